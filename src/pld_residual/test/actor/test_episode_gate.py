"""The actor's episode gate: no gating without events, no command between episodes, the residual from
step T_base of the event, whatever the order of the RESIDUAL event and the observation."""

from __future__ import annotations

from pld_residual.actor.episode_gate import PHASE_DONE, PHASE_PROBING, PHASE_RESIDUAL, next_gate

RESET = 0


def test_an_episode_opens_at_its_first_observation_and_closes_at_done() -> None:
    gate = next_gate(None, RESET, 4, 1_000)
    gate = next_gate(gate, PHASE_PROBING, 4, 1_000)
    assert gate.running(1_000) and not gate.running(999)  # an observation of the previous episode
    assert not gate.residual_allowed(3, 2_000) and gate.residual_allowed(4, 2_000)
    gate = next_gate(gate, PHASE_RESIDUAL, 4, 5_000)
    assert gate.start_stamp_ns == 1_000 and gate.residual_allowed(4, 5_000)
    gate = next_gate(gate, PHASE_DONE, 4, 9_000)
    assert not gate.running(9_000) and not gate.residual_allowed(10, 9_000)


def test_a_warmup_episode_never_lets_the_residual_act() -> None:
    gate = next_gate(None, PHASE_PROBING, 200, 0)
    assert not any(gate.residual_allowed(step, 0) for step in range(200))


def test_a_chunk_of_the_previous_episode_is_not_indexed_in_the_next() -> None:
    """Lockstep: the last chunk of an episode still has rows when the next episode's first observation
    comes one period later; the actor must wait for the new episode's chunk instead of using them."""
    import numpy as np

    from pld_residual.actor.config import ResidualActorConfig
    from pld_residual.actor.core import ChunkInput, ObservationInput, ResidualActor

    period = 50_000_000
    actor = ResidualActor(ResidualActorConfig(workspace_enabled=False))
    old = ChunkInput(
        np.full((10, 7), 0.01, np.float32), stamp_ns=10 * period, features=np.zeros(0, np.float32)
    )
    actor.set_chunk(old)
    proprio = np.array([0.5, 0.0, 0.3, 1, 0, 0, 0, 0.04], np.float32)
    actor.set_observation(ObservationInput(proprio, stamp_ns=11 * period))
    assert actor.tick(11 * period).base[0] == np.float32(0.01)  # no episode manager: as before
    actor.set_episode(RESET, 0, 11 * period)
    actor.set_episode(PHASE_RESIDUAL, 0, 11 * period)
    assert actor.current_chunk() is None
    assert actor.tick(11 * period).provenance.name == "HOLD"
    actor.set_chunk(ChunkInput(np.full((10, 7), 0.002, np.float32), 11 * period, np.zeros(0, np.float32)))
    step = actor.tick(11 * period)
    assert step.provenance.name == "BASE" and step.base[0] == np.float32(0.002)


def test_covering_time_waits_for_the_chunk_of_every_execute_steps_th_step() -> None:
    """Lockstep: a chunk stamped at step 4 serves steps 4..7 (rows on the step grid despite ns jitter);
    step 8 waits for the next chunk; execute_steps 0 takes any row of the horizon."""
    import numpy as np

    from pld_residual.actor.config import ResidualActorConfig
    from pld_residual.actor.core import ChunkInput, ObservationInput, ResidualActor

    period = 50_000_000
    proprio = np.zeros(8, np.float32)
    chunk = ChunkInput(np.zeros((10, 7), np.float32), stamp_ns=4 * period, features=np.zeros(0, np.float32))
    actor = ResidualActor(ResidualActorConfig(execute_steps=4))
    actor.set_chunk(chunk)
    at = [
        actor.covering_time(ObservationInput(proprio, k * period + (-3 if k % 2 else 2))) for k in range(3, 9)
    ]
    assert at == [None, 4 * period + 2, 5 * period, 6 * period + 2, 7 * period, None]
    anyrow = ResidualActor(ResidualActorConfig(execute_steps=0))
    anyrow.set_chunk(chunk)
    assert anyrow.covering_time(ObservationInput(proprio, 12 * period)) == 12 * period
    assert anyrow.covering_time(ObservationInput(proprio, 14 * period)) is None  # past the horizon
