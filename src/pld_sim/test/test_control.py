"""The 7-D control interface: validation, clipping, pose deltas and the differential IK."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from pld_sim.control import (
    ActionLimits,
    DifferentialIK,
    apply_delta,
    clip_action,
    orientation_error,
    quat_from_rotvec,
    validate_action,
)
from pld_sim.robots import get_robot


@pytest.mark.parametrize(
    "bad",
    [[0.0] * 6, [0.0] * 8, [[0.0] * 7], [np.nan] + [0.0] * 6, [0.0] * 6 + [np.inf], "seven", None],
)
def test_validate_action_rejects_bad_input_with_a_clear_message(bad) -> None:
    with pytest.raises(ValueError, match="action"):
        validate_action(bad)


def test_clip_action_applies_metric_limits_per_component() -> None:
    limits = ActionLimits(max_translation_m=0.02, max_rotation_rad=0.1)
    clipped = clip_action(np.array([1.0, -1.0, 0.01, 5.0, -5.0, 0.05, 3.0]), limits)
    np.testing.assert_allclose(clipped, [0.02, -0.02, 0.01, 0.1, -0.1, 0.05, 1.0])
    with pytest.raises(ValueError):
        ActionLimits(max_translation_m=0.0)


def test_apply_delta_and_orientation_error_are_inverse() -> None:
    quat = quat_from_rotvec(np.array([0.3, -0.2, 0.5]))
    pos, new_quat = apply_delta(np.zeros(3), quat, np.array([0.01, 0.02, -0.03, 0.05, 0.0, -0.04, 0.0]))
    np.testing.assert_allclose(pos, [0.01, 0.02, -0.03])
    np.testing.assert_allclose(orientation_error(new_quat, quat), [0.05, 0.0, -0.04], atol=1e-9)


def test_ik_reaches_a_nearby_pose_on_the_fr3() -> None:
    robot = get_robot("fr3")
    model = robot.load().compile()
    data = mujoco.MjData(model)
    qpos_idx = [model.jnt_qposadr[model.joint(j).id] for j in robot.arm_joints]
    data.qpos[qpos_idx] = robot.home_qpos
    mujoco.mj_forward(model, data)
    ik = DifferentialIK(model, robot.tcp_site, robot.arm_joints, np.array(robot.home_qpos))
    start_pos, start_quat = ik.tcp_pose(data)
    target_pos, target_quat = apply_delta(
        start_pos, start_quat, np.array([0.03, -0.02, 0.02, 0.0, 0.0, 0.2, 0])
    )
    for _ in range(10):  # what ten control steps of the IK do with perfect joint tracking
        data.qpos[qpos_idx] = ik.solve(data, target_pos, target_quat)
        mujoco.mj_forward(model, data)
    pos, quat = ik.tcp_pose(data)
    assert np.linalg.norm(pos - target_pos) < 1e-3
    assert np.linalg.norm(orientation_error(target_quat, quat)) < 5e-3
    lower, upper = model.jnt_range[[model.joint(j).id for j in robot.arm_joints]].T
    assert np.all(data.qpos[qpos_idx] >= lower) and np.all(data.qpos[qpos_idx] <= upper)
