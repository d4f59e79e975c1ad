"""The safety combiner rule by rule, with hand-computed numbers (defaults: 2 cm, 0.1 rad, 200 ms)."""

from __future__ import annotations

import numpy as np
import pytest

from pld_residual.actor.config import ResidualActorConfig
from pld_residual.actor.safety import (
    Intervention,
    Provenance,
    SafetyCounters,
    combine_safely,
    hold_command,
)

MS = 1_000_000
NOW = 10_000 * MS
CFG = ResidualActorConfig()
TCP = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0, 0.04])  # tcp xyz, quaternion, gripper width


def run(base, residual=None, *, cfg=CFG, proprio=TCP, obs_age_ms=50, chunk_age_ms=100, estop=False, **kw):
    return combine_safely(
        None if base is None else np.asarray(base, float),
        None if residual is None else np.asarray(residual, float),
        kw.pop("xi", 0.5),
        proprio,
        cfg,
        NOW,
        None if obs_age_ms is None else NOW - obs_age_ms * MS,
        None if chunk_age_ms is None else NOW - chunk_age_ms * MS,
        estop,
        **kw,
    )


def test_base_passes_through_unchanged_without_a_residual() -> None:
    base = [0.01, -0.01, 0.005, 0.05, 0.0, -0.05, 1.0]
    command, provenance, interventions = run(base)
    np.testing.assert_array_equal(command, base)
    assert provenance is Provenance.BASE and interventions == ()


def test_residual_is_scaled_by_xi_and_added() -> None:
    # The residual is in the normalised space (1 = 2 cm, 0.1 rad, 1.0 gripper):
    # dx 0.01 + 0.5 * 0.25 * 0.02 = 0.0125; dry 0 + 0.5 * 0.5 * 0.1 = 0.025; gripper -1 + 0.5 * 1 = -0.5
    command, provenance, interventions = run([0.01, 0, 0, 0, 0, 0, -1], [0.25, 0, 0, 0, 0.5, 0, 1.0])
    np.testing.assert_allclose(command, [0.0125, 0, 0, 0, 0.025, 0, -0.5], rtol=1e-6)
    assert provenance is Provenance.RESIDUAL and interventions == ()


def test_per_step_deltas_are_clipped_per_axis() -> None:
    command, provenance, interventions = run([0.05, -0.05, 0.01, 0.3, -0.3, 0.05, 0.5])
    np.testing.assert_allclose(command, [0.02, -0.02, 0.01, 0.1, -0.1, 0.05, 0.5])
    assert provenance is Provenance.BASE and interventions == (Intervention.CLIP_DELTA,)
    # base -1.5 cm plus a full-scale residual (0.5 * 2 cm) would be -2.5 cm: clipped to -2 cm
    command, _, interventions = run([-0.015] + [0.0] * 5 + [-1.0], [-1.0, 0, 0, 0, 0, 0, 0])
    assert command[0] == pytest.approx(-0.02) and interventions == (Intervention.CLIP_DELTA,)


def test_gripper_range_clip_is_not_an_intervention_but_its_rate_limit_is() -> None:
    command, _, interventions = run([0.0] * 6 + [1.0], [0.0] * 6 + [1.0])  # 1 + 0.5 -> 1
    assert command[6] == 1.0 and interventions == ()
    slow = ResidualActorConfig(max_delta_gripper=0.5)
    command, _, interventions = run([0.0] * 6 + [1.0], cfg=slow, last_gripper=-1.0)  # -1 -> 1 limited
    assert command[6] == -0.5 and interventions == (Intervention.CLIP_DELTA,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_base_or_residual_holds_with_the_last_gripper(bad: float) -> None:
    base = [0.01, 0, 0, 0, 0, 0, 1.0]
    command, provenance, interventions = run([0.01, bad, 0, 0, 0, 0, 1.0], last_gripper=0.3)
    np.testing.assert_array_equal(command, [0, 0, 0, 0, 0, 0, 0.3])
    assert provenance is Provenance.HOLD and interventions == (Intervention.NONFINITE_BASE,)
    command, provenance, interventions = run(base, [0, 0, 0, 0, 0, 0, bad], last_gripper=0.3)
    np.testing.assert_array_equal(command, hold_command(0.3))
    assert provenance is Provenance.HOLD and interventions == (Intervention.NONFINITE_RESIDUAL,)


def test_hold_before_any_command_uses_the_initial_gripper() -> None:
    command, _, _ = run([np.nan] * 7)
    np.testing.assert_array_equal(command, [0, 0, 0, 0, 0, 0, -1.0])
    closed = ResidualActorConfig(initial_gripper=1.0)
    assert run([np.nan] * 7, cfg=closed).command[6] == 1.0


def test_watchdog_on_the_observation_and_chunk_stamps() -> None:
    base = [0.01, 0, 0, 0, 0, 0, 1.0]
    assert run(base, obs_age_ms=200).provenance is Provenance.BASE  # exactly the watchdog: still fresh
    for age in (201, -201):  # too old, or from a clock far in the future
        assert run(base, obs_age_ms=age).interventions == (Intervention.STALE_OBSERVATION,)
    assert run(base, obs_age_ms=None).interventions == (Intervention.STALE_OBSERVATION,)
    assert run(base, chunk_age_ms=250).interventions == (Intervention.STALE_CHUNK,)
    assert run(base, chunk_age_ms=None).interventions == (Intervention.STALE_CHUNK,)
    assert run(None).interventions == (Intervention.STALE_CHUNK,)  # no row of the chunk applies now
    held = run(base, chunk_age_ms=250, last_gripper=1.0)
    assert held.provenance is Provenance.HOLD
    np.testing.assert_array_equal(held.command, hold_command(1.0))


def test_estop_wins_over_every_other_reason() -> None:
    command, provenance, interventions = run([np.nan] * 7, obs_age_ms=None, estop=True, last_gripper=1.0)
    np.testing.assert_array_equal(command, hold_command(1.0))
    assert provenance is Provenance.HOLD and interventions == (Intervention.ESTOP,)


def test_workspace_clip_stops_at_the_box() -> None:
    proprio = TCP.copy()
    proprio[:3] = [0.79, 0.0, 0.005]  # 1 cm from x max, 5 mm above z min
    command, provenance, interventions = run([0.02, 0.01, -0.02, 0, 0, 0, 1.0], proprio=proprio)
    np.testing.assert_allclose(command, [0.01, 0.01, -0.005, 0, 0, 0, 1.0])
    assert provenance is Provenance.BASE and interventions == (Intervention.WORKSPACE,)


def test_outside_the_box_only_motion_back_is_allowed() -> None:
    proprio = TCP.copy()
    proprio[:3] = [0.85, 0.0, 0.3]  # 5 cm beyond x max
    assert run([0.01, 0, 0, 0, 0, 0, 1.0], proprio=proprio).command[0] == 0.0
    back = run([-0.01, 0, 0, 0, 0, 0, 1.0], proprio=proprio)
    assert back.command[0] == -0.01 and back.interventions == ()


def test_workspace_reject_mode_holds_and_reports_the_clip_too() -> None:
    reject = ResidualActorConfig(workspace_mode="reject")
    proprio = TCP.copy()
    proprio[:3] = [0.79, 0.0, 0.3]
    command, provenance, interventions = run([0.05, 0, 0, 0, 0, 0, 1.0], cfg=reject, proprio=proprio)
    np.testing.assert_array_equal(command, hold_command(-1.0))
    assert provenance is Provenance.HOLD and interventions == (
        Intervention.CLIP_DELTA,
        Intervention.WORKSPACE,
    )
    assert run([0.005, 0, 0, 0, 0, 0, 1.0], cfg=reject, proprio=proprio).provenance is Provenance.BASE


@pytest.mark.parametrize("proprio", [None, np.array([0.5, 0.0]), np.array([0.5, np.nan, 0.3])])
def test_missing_tcp_holds_unless_the_workspace_is_disabled(proprio) -> None:
    assert run([0.01, 0, 0, 0, 0, 0, 1.0], proprio=proprio).interventions == (Intervention.INVALID_PROPRIO,)
    free = ResidualActorConfig(workspace_enabled=False)
    assert run([0.01, 0, 0, 0, 0, 0, 1.0], cfg=free, proprio=proprio).provenance is Provenance.BASE


def test_wrong_shapes_raise() -> None:
    with pytest.raises(ValueError, match="base must have 7"):
        run([0.0] * 6)
    with pytest.raises(ValueError, match="residual must have 7"):
        run([0.0] * 7, [0.0] * 8)


def test_counters_count_each_kind_and_the_holds() -> None:
    counters = SafetyCounters()
    counters.record(run([0.05, 0, 0, 0, 0, 0, 1.0]))
    counters.record(run([np.nan] * 7))
    counters.record(run([0.0] * 7, estop=True))
    counters.record(run([0.0] * 7, [0.0] * 6 + [np.nan]))
    counts = counters.as_dict()
    assert counts["commands"] == 4 and counts["holds"] == 3
    assert (
        counts["clip_delta"]
        == counts["nonfinite_base"]
        == counts["estop"]
        == counts["nonfinite_residual"]
        == 1
    )
    assert counts["stale_chunk"] == counts["workspace"] == 0
    assert set(counts) == {"commands", "holds"} | {kind.value for kind in Intervention}


def test_provenance_values_match_the_message_constants() -> None:
    from pld_interfaces.msg import ActionCommand

    assert Provenance.BASE == ActionCommand.PROVENANCE_BASE
    assert Provenance.RESIDUAL == ActionCommand.PROVENANCE_RESIDUAL
    assert Provenance.HUMAN == ActionCommand.PROVENANCE_HUMAN
    assert Provenance.HOLD == ActionCommand.PROVENANCE_HOLD
