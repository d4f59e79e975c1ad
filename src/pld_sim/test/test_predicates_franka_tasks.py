"""Pure parts of the cluttered-pick and peg-insertion tasks on constructed numbers (no simulation)."""

from __future__ import annotations

import numpy as np
import pytest

from pld_sim.experts.base import top_down_quat
from pld_sim.experts.peg_insertion import tcp_yaw
from pld_sim.experts.pick_cube_cluttered import FINGER_REACH, finger_clearance, quarter_turn_wrap
from pld_sim.predicates import INSERTION_DEPTH_M, peg_inserted
from pld_sim.tasks.peg_insertion import fixture_boxes, peg_bottom_in_fixture
from pld_sim.tasks.pick_cube_cluttered import PickCubeCluttered, sample_layout, target_clearance


def test_peg_inserted_needs_depth_and_the_hole() -> None:
    assert peg_inserted(0.025, 0.001, 0.013)
    assert peg_inserted(INSERTION_DEPTH_M, 0.013, 0.013)  # both limits inclusive
    assert not peg_inserted(0.019, 0.0, 0.013)  # not deep enough
    assert not peg_inserted(-0.03, 0.0, 0.013)  # still above the opening
    assert not peg_inserted(0.05, 0.08, 0.013)  # standing on the table beside the fixture
    assert not peg_inserted(0.03, -0.02, 0.013)  # the sign of the offset does not matter
    assert peg_inserted(0.012, 0.0, 0.013, min_depth=0.01)


def test_peg_bottom_in_fixture_frame() -> None:
    yaw = np.pi / 2
    fixture_mat = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    hole_top = np.array([0.5, 0.1, 0.05])
    upright = np.eye(3)
    # peg centre 1 cm in world +x of the hole axis, bottom 3 cm below the top surface
    local = peg_bottom_in_fixture(np.array([0.51, 0.1, 0.06]), upright, 0.04, hole_top, fixture_mat)
    np.testing.assert_allclose(local, [0.0, -0.01, -0.03], atol=1e-12)


def test_cluttered_success_is_about_the_target_only() -> None:
    task = PickCubeCluttered()
    held = {"cube_bottom_z": 0.06, "touching_left_finger": 1.0, "touching_right_finger": 1.0}
    assert task.success_from_terms({**held, "distractors_lifted": 0.0})
    assert not task.success_from_terms({**held, "cube_bottom_z": 0.0, "distractors_lifted": 1.0})
    assert not task.success_from_terms({**held, "touching_right_finger": 0.0, "distractors_lifted": 0.0})


@pytest.mark.parametrize("half_size", [0.025 * 0.85, 0.025, 0.025 * 1.15])
def test_layouts_keep_the_gripper_room_around_the_target(half_size: float) -> None:
    rng = np.random.default_rng(0)
    for count in (3, 4):
        for _ in range(50):
            points = sample_layout(rng, count, half_size)
            assert points.shape == (count, 2)
            near = np.linalg.norm(points[1:] - points[0], axis=1)
            assert near.min() >= target_clearance(half_size)
            for i in range(1, count):
                for j in range(i + 1, count):
                    assert np.linalg.norm(points[i] - points[j]) > 2 * np.sqrt(2) * half_size


def test_finger_clearance_only_counts_cubes_in_line_with_the_fingers() -> None:
    target = np.array([0.5, 0.0])
    # yaw 0: the fingers close along world y
    in_line = np.array([[0.5, 0.15]])
    beside = np.array([[0.65, 0.0]])
    assert finger_clearance(0.0, target, in_line, 0.025) == pytest.approx(
        0.15 - FINGER_REACH - np.sqrt(2) * 0.025
    )
    assert finger_clearance(0.0, target, beside, 0.025) == np.inf
    assert finger_clearance(np.pi / 2, target, beside, 0.025) < 0.1


def test_fixture_boxes_leave_the_hole_open_and_nothing_above_the_top() -> None:
    inner, outer, height, chamfer = 0.013, 0.045, 0.05, 0.006
    boxes = fixture_boxes(inner, outer, height, chamfer)
    assert len(boxes) == 12
    for name, size, pos, quat in boxes:
        if name == "chamfer":
            corner = chamfer  # a box turned 45 degrees: its corners lie `chamfer` from its centre
            assert pos[2] + corner == pytest.approx(height)
            # its inner corner is exactly on the hole's wall, at the chamfer's foot
            assert max(abs(pos[0]), abs(pos[1])) - corner == pytest.approx(inner)
        else:
            assert quat == [1.0, 0.0, 0.0, 0.0]
            assert pos[2] + size[2] <= height + 1e-12
            # the inner face of every straight box is at or outside the hole
            assert max(abs(pos[0]) - size[0], abs(pos[1]) - size[1]) >= inner - 1e-12
            assert max(abs(pos[0]) + size[0], abs(pos[1]) + size[1]) <= outer + 1e-12


def test_tcp_yaw_inverts_top_down_quat_and_quarter_turns_fold() -> None:
    for yaw in (-2.0, -0.3, 0.0, 0.7, 3.0):
        assert tcp_yaw(top_down_quat(yaw)) == pytest.approx(yaw)
    assert quarter_turn_wrap(np.pi / 2 + 0.1) == pytest.approx(0.1)
    assert quarter_turn_wrap(-np.pi / 4 - 0.05) == pytest.approx(np.pi / 4 - 0.05)
    assert -np.pi / 4 <= quarter_turn_wrap(12.3) < np.pi / 4
