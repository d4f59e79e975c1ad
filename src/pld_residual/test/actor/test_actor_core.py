"""The actor's control step in-process with a real ResidualPolicy: chunk indexing by time, base
pass-through, versioned parameter blobs (newer only, bad ones kept out), NaN weights, e-stop, loop timing."""

from __future__ import annotations

import numpy as np
import pytest

from pld_residual.actor.config import ResidualActorConfig
from pld_residual.actor.core import ChunkInput, ObservationInput, ParamsOutcome, ResidualActor, residual_input
from pld_residual.actor.safety import Intervention, Provenance
from pld_residual.actor.timing import LoopTimer

MS = 1_000_000
AGENT = {"hidden": 16, "actor_layers": 1}
FEATURES = np.linspace(-1, 1, 5, dtype=np.float32)
PROPRIO = np.array([0.5, 0.0, 0.3, 1, 0, 0, 0, 0.04], np.float32)
OBS_DIM = FEATURES.size + PROPRIO.size


@pytest.fixture(scope="module")
def policy():
    from pld_residual.actor.config import ResidualActorConfig as Cfg
    from pld_residual.agent.policy import ResidualPolicy

    return ResidualPolicy.create(Cfg(agent_options=AGENT).agent_config(), OBS_DIM)


def blob_filled(policy, value: float) -> bytes:
    """The policy's parameter blob with every weight set to `value` (NaN -> a NaN residual)."""
    import flax.serialization
    import jax

    tree = flax.serialization.msgpack_restore(policy.params_to_bytes())
    return flax.serialization.msgpack_serialize(jax.tree.map(lambda x: np.full_like(x, value), tree))


def chunk(stamp_ns: int, rows: int = 4) -> ChunkInput:
    actions = np.zeros((rows, 7), np.float32)
    actions[:, 0] = 0.001 * np.arange(1, rows + 1)  # row k moves dx = (k + 1) mm
    actions[:, 6] = 1.0
    return ChunkInput(actions, stamp_ns, FEATURES)


def actor_with_inputs(now_ns: int, **overrides) -> ResidualActor:
    actor = ResidualActor(ResidualActorConfig(agent_options=AGENT, **overrides))
    actor.set_observation(ObservationInput(PROPRIO, now_ns - 10 * MS, episode_id=3, step=7, frame_id="base"))
    actor.set_chunk(chunk(now_ns - 60 * MS))
    return actor


def test_without_parameters_the_time_indexed_base_passes_through() -> None:
    now = 5_000 * MS
    actor = actor_with_inputs(now)
    step = actor.tick(now)  # 60 ms after the chunk stamp: row 1
    assert step.provenance is Provenance.BASE and step.interventions == ()
    np.testing.assert_allclose(step.command, [0.002, 0, 0, 0, 0, 0, 1.0], atol=1e-7)
    np.testing.assert_array_equal(step.residual, np.zeros(7))
    assert (step.episode_id, step.step, step.frame_id) == (3, 7, "base")
    assert actor.tick(now + 90 * MS).command[0] == pytest.approx(0.004)  # 150 ms: row 3
    stale = actor.tick(now + 140 * MS)  # 200 ms: past the 4-row chunk
    assert stale.provenance is Provenance.HOLD and stale.interventions == (Intervention.STALE_CHUNK,)
    np.testing.assert_array_equal(stale.command, [0, 0, 0, 0, 0, 0, 1.0])  # gripper kept closed
    status = actor.status()
    assert not status["ready"] and status["counters"]["stale_chunk"] == 1 and status["params_version"] is None


def test_params_wait_for_the_input_size_apply_newer_versions_and_ignore_older(policy) -> None:
    from pld_residual.agent.policy import PARAMS_FORMAT, ResidualPolicy

    now = 5_000 * MS
    actor = ResidualActor(ResidualActorConfig(agent_options=AGENT))
    assert actor.apply_params(3, 30, PARAMS_FORMAT, blob_filled(policy, 0.05)) is ParamsOutcome.PENDING
    assert actor.apply_params(2, 20, PARAMS_FORMAT, blob_filled(policy, 0.2)) is ParamsOutcome.IGNORED
    actor.set_observation(ObservationInput(PROPRIO, now - 10 * MS))
    actor.set_chunk(chunk(now - 60 * MS))
    step = actor.tick(now)
    assert actor.params_version == 3 and actor.params_num_updates == 30 and not actor.params_pending

    expected = ResidualPolicy.create(policy.config, OBS_DIM)
    expected.load_bytes(blob_filled(policy, 0.05))
    base = chunk(0).actions[1].astype(np.float64)
    # the policy and the combination work in the learner's normalised space (2 cm, 0.1 rad, 1 = 1.0)
    high = np.array([0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0])
    residual = expected.act(residual_input(FEATURES, PROPRIO, "chunk"), np.clip(base / high, -1, 1))
    assert step.provenance is Provenance.RESIDUAL and np.all(residual != 0)
    np.testing.assert_allclose(step.residual, residual, rtol=1e-6)
    combined = high * np.clip(base / high + 0.5 * residual, -1, 1)
    np.testing.assert_allclose(step.command, combined, rtol=1e-5)

    assert actor.apply_params(3, 31, PARAMS_FORMAT, blob_filled(policy, 0.3)) is ParamsOutcome.IGNORED
    assert actor.apply_params(4, 40, "torch-pickle", b"") is ParamsOutcome.REJECTED
    assert actor.apply_params(5, 50, PARAMS_FORMAT, b"\x00garbage") is ParamsOutcome.REJECTED
    np.testing.assert_allclose(actor.tick(now).residual, residual, rtol=1e-6)  # old parameters kept
    assert actor.apply_params(6, 60, PARAMS_FORMAT, blob_filled(policy, -0.05)) is ParamsOutcome.APPLIED
    assert actor.tick(now).residual[0] != pytest.approx(residual[0])
    counters = actor.status()["counters"]
    assert (counters["params_applied"], counters["params_ignored"], counters["params_rejected"]) == (2, 2, 2)
    assert actor.status()["params_version"] == 6


def test_nan_weights_hold_and_count(policy) -> None:
    from pld_residual.agent.policy import PARAMS_FORMAT

    now = 5_000 * MS
    actor = actor_with_inputs(now)
    assert actor.apply_params(1, 1, PARAMS_FORMAT, blob_filled(policy, np.nan)) is ParamsOutcome.APPLIED
    for _ in range(3):
        step = actor.tick(now)
        assert step.provenance is Provenance.HOLD and step.interventions == (Intervention.NONFINITE_RESIDUAL,)
    np.testing.assert_array_equal(step.command, [0, 0, 0, 0, 0, 0, -1.0])  # nothing commanded yet: initial
    assert actor.status()["counters"]["nonfinite_residual"] == 3


def test_policy_errors_hold_and_the_residual_can_be_disabled(policy) -> None:
    from pld_residual.agent.policy import PARAMS_FORMAT

    now = 5_000 * MS
    actor = actor_with_inputs(now)
    assert actor.apply_params(1, 1, PARAMS_FORMAT, blob_filled(policy, 0.1)) is ParamsOutcome.APPLIED
    actor.set_chunk(ChunkInput(chunk(now).actions, now, np.zeros(2, np.float32)))  # another VLA: 2 features
    step = actor.tick(now)
    assert step.interventions == (Intervention.POLICY_ERROR,) and "obs must be" in actor.last_error
    off = actor_with_inputs(now, residual_enabled=False)
    assert off.apply_params(1, 1, PARAMS_FORMAT, blob_filled(policy, 0.1)) is ParamsOutcome.APPLIED
    assert off.tick(now).provenance is Provenance.BASE


def test_estop_holds_until_released() -> None:
    now = 5_000 * MS
    actor = actor_with_inputs(now)
    assert actor.tick(now).provenance is Provenance.BASE
    assert actor.set_estop(True) and not actor.set_estop(True)
    step = actor.tick(now)
    assert step.interventions == (Intervention.ESTOP,)
    np.testing.assert_array_equal(step.command, [0, 0, 0, 0, 0, 0, 1.0])
    assert actor.status()["estop"] and not actor.status()["ready"]
    assert actor.set_estop(False) and actor.tick(now).provenance is Provenance.BASE
    assert actor.status()["counters"]["estop_engagements"] == 1


def test_malformed_chunks_are_refused() -> None:
    actor = ResidualActor(ResidualActorConfig())
    with pytest.raises(ValueError, match="chunk actions"):
        actor.set_chunk(ChunkInput(np.zeros((4, 6), np.float32), 0, FEATURES))
    actor.reject_input("chunk", "bad")
    assert actor.status()["counters"]["invalid_chunks"] == 1


def test_loop_timer_reports_mean_and_p99_jitter() -> None:
    timer = LoopTimer(0.05)
    for t_ms in (0, 50, 100, 160, 200):
        timer.tick(t_ms * MS)
    stats = timer.stats()
    assert stats["ticks"] == 5 and stats["window"] == 4
    assert stats["period_mean_ms"] == pytest.approx(50.0) and stats["period_max_ms"] == pytest.approx(60.0)
    assert stats["jitter_p99_ms"] == pytest.approx(10.0)  # deviations 0, 0, 10, 10 ms
