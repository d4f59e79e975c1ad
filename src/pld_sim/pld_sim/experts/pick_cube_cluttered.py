"""Scripted expert for `pick_cube_cluttered`: the pick_cube waypoints, with the finger axis chosen to
keep the open fingers away from the distractors."""

from __future__ import annotations

from typing import Any

import numpy as np

from pld_sim.control import orientation_error
from pld_sim.experts.base import ScriptedExpert, grasp_yaw, register_expert, top_down_quat

OPEN, CLOSED = -1.0, 1.0
APPROACH_HEIGHT = 0.10
LIFT_HEIGHT = 0.15
MAX_CLOSE_STEPS = 20
# TCP 5 mm below the cube's centre: the pads cover the cube's middle, fingertips still 1.5 cm off the table
GRASP_ABOVE_CENTRE = -0.005
# Half thickness of a Franka finger across its closing axis, and the reach of an open finger along it.
FINGER_HALF_WIDTH = 0.015
FINGER_REACH = 0.066
ALIGNED_RAD = 0.05  # hand yaw error allowed before descending
# Finger gaps beyond this are all equally good (then the smaller hand rotation wins).
ENOUGH_GAP = 0.03
SLOT = 4  # privileged layout per non-target cube: x, y, z, on_table


def finger_clearance(yaw: float, target_xy: np.ndarray, others_xy: np.ndarray, half_size: float) -> float:
    """Smallest gap (m) between an open finger and a distractor when grasping with hand yaw `yaw`.

    The fingers close along the hand's y axis, (sin yaw, -cos yaw) for a top-down TCP. A distractor
    off to the side of that axis (beyond the finger width) cannot be hit and does not count.
    """
    axis = np.array([np.sin(yaw), -np.cos(yaw)])
    side = np.array([np.cos(yaw), np.sin(yaw)])
    extent = np.sqrt(2.0) * half_size
    gap = np.inf
    for xy in others_xy:
        offset = xy - target_xy
        if abs(offset @ side) < FINGER_HALF_WIDTH + extent:
            gap = min(gap, abs(offset @ axis) - FINGER_REACH - extent)
    return float(gap)


def quarter_turn_wrap(angle: float) -> float:
    """`angle` folded into [-pi/4, pi/4): a cube (or a square peg) looks the same every quarter turn."""
    return float((angle + np.pi / 4) % (np.pi / 2) - np.pi / 4)


@register_expert
class PickCubeClutteredExpert(ScriptedExpert):
    task = "pick_cube_cluttered"

    def reset(self) -> None:
        super().reset()
        self._yaw: float | None = None

    def choose_yaw(self, privileged: np.ndarray) -> float:
        """Of the two finger axes that fit the cube's faces, the one with more room to the neighbours
        (ties go to the smaller hand rotation)."""
        cube_pos, cube_quat, half_size = privileged[:3], privileged[3:7], float(privileged[7])
        slots = privileged[8:].reshape(-1, SLOT)
        others = slots[slots[:, 3] > 0.5, :2]
        yaw = grasp_yaw(cube_quat)
        alternative = yaw - np.copysign(np.pi / 2, yaw)
        here = finger_clearance(yaw, cube_pos[:2], others, half_size)
        there = finger_clearance(alternative, cube_pos[:2], others, half_size)
        return alternative if min(there, ENOUGH_GAP) > min(here, ENOUGH_GAP) + 0.005 else yaw

    def plan(self, obs: dict[str, Any]) -> np.ndarray:
        privileged = np.asarray(obs["privileged"], dtype=np.float64)
        cube_pos = privileged[:3]
        if self._yaw is None:
            self._yaw = self.choose_yaw(privileged)
        if self.phase < 2:
            # follow the cube's yaw within the chosen fold (it may turn a little when touched); once the
            # fingers close, the yaw stays put: a cube tilting in the grasp would give a meaningless yaw
            self._yaw += quarter_turn_wrap(grasp_yaw(privileged[3:7]) - self._yaw)
        quat = top_down_quat(self._yaw)
        grasp = cube_pos + np.array([0.0, 0.0, GRASP_ABOVE_CENTRE])
        if self.phase == 0:  # above the cube, fingers aligned with its faces
            action, dist = self.move_towards(
                obs, cube_pos + np.array([0.0, 0.0, APPROACH_HEIGHT]), quat, OPEN
            )
            turn = np.linalg.norm(orientation_error(quat, np.asarray(obs["proprio"][3:7], dtype=np.float64)))
            if dist < 0.01 and turn < ALIGNED_RAD and self.phase_steps > 3:
                self.advance()
        elif self.phase == 1:  # down to grasp height
            action, dist = self.move_towards(obs, grasp, quat, OPEN)
            if dist < 0.008:
                self.advance()
        elif self.phase == 2:  # close until the fingers rest on the cube's faces
            action, _ = self.move_towards(obs, grasp, quat, CLOSED)
            if obs["proprio"][7] < 2 * privileged[7] + 0.004 or self.phase_steps >= MAX_CLOSE_STEPS:
                self.advance()
        else:  # lift
            action, _ = self.move_towards(
                obs, np.array([cube_pos[0], cube_pos[1], LIFT_HEIGHT]), quat, CLOSED
            )
        return action
