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
