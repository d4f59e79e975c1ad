"""Scripted expert for `peg_insertion`: grasp the peg near its top, lift it clear of the fixture, line up
the peg's bottom face (not the TCP) with the hole, turn it to the hole's yaw, then push it in slowly.

Aligning the measured peg rather than the hand absorbs how the peg sits in the grasp (offset, tilt).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from pld_sim.control import orientation_error
from pld_sim.experts.base import ScriptedExpert, grasp_yaw, register_expert, top_down_quat
from pld_sim.experts.pick_cube_cluttered import quarter_turn_wrap

OPEN, CLOSED = -1.0, 1.0
APPROACH_HEIGHT = 0.08  # above the peg's top
# TCP this far below the peg's top: the palm (3.7 cm above the TCP) stays 1.2 cm clear of the peg's top,
# and the fingers hold the peg close to its centre of mass. The grasp is a weak pivot about the finger
# axis: a peg held far from its centre of mass swings and slips out when the hand moves.
GRIP_BELOW_TOP = 0.025
MAX_CLOSE_STEPS = 20
CARRY_CLEARANCE = 0.03  # peg bottom above the fixture's top while carrying
PRE_INSERT_CLEARANCE = 0.01  # peg bottom above the fixture's top before pushing in
INSERT_DEPTH = 0.028  # aim the peg bottom this far below the top (success needs 2 cm)
INSERT_SPEED = 0.006  # m per control step while inserting
CARRY_STEP_M = 0.01  # largest hand motion per control step while holding the peg
CARRY_STEP_RAD = 0.04
ALIGNED_M = 0.0015
ALIGNED_RAD = 0.03
PRIVILEGED_SIZE = 17
# with action noise the alignment tolerances may never all hold at once: go on after this many steps
MAX_ALIGN_STEPS = 40
APPROACH, DESCEND, CLOSE, LIFT, CARRY, ALIGN, INSERT = range(7)  # the phases
STANDING_RAD = 0.2  # a dropped peg tilted less than this can be grasped again
LOST_M = 0.05  # peg centre this far from the TCP after grasping: it is no longer in the hand


def tcp_yaw(quat: np.ndarray) -> float:
    """Yaw of a top-down TCP (the inverse of `top_down_quat`): the angle of its x axis about world z."""
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=np.float64))
    return float(np.arctan2(mat[3], mat[0]))


@register_expert
class PegInsertionExpert(ScriptedExpert):
    task = "peg_insertion"

    def reset(self) -> None:
        super().reset()
        self._yaw = 0.0

    def plan(self, obs: dict[str, Any]) -> np.ndarray:
        privileged = np.asarray(obs["privileged"], dtype=np.float64)
        if privileged.shape != (PRIVILEGED_SIZE,):
            raise ValueError(f"peg_insertion privileged state must have {PRIVILEGED_SIZE} values")
        peg_pos, peg_quat = privileged[:3], privileged[3:7]
        hole_top, hole_quat = privileged[7:10], privileged[10:14]
        half_length = privileged[15]
        proprio = np.asarray(obs["proprio"], dtype=np.float64)
        tcp_pos, tcp_quat = proprio[:3], proprio[3:7]
        peg_mat = np.empty(9)
        mujoco.mju_quat2Mat(peg_mat, peg_quat)
        peg_axis = peg_mat.reshape(3, 3)[:, 2]
        peg_bottom = peg_pos - peg_axis * half_length
        peg_top = peg_pos + peg_axis * half_length

        if self.phase == APPROACH:  # above the peg, fingers square to its faces
            self._yaw = grasp_yaw(peg_quat)
            target = peg_top + np.array([0.0, 0.0, APPROACH_HEIGHT])
            action, dist = self.move_towards(obs, target, top_down_quat(self._yaw), OPEN)
            turned = np.linalg.norm(orientation_error(top_down_quat(self._yaw), tcp_quat))
            if dist < 0.008 and turned < ALIGNED_RAD and self.phase_steps > 3:
                self.advance()
        elif self.phase == DESCEND:  # down around the peg's top
            self._yaw = grasp_yaw(peg_quat)
            target = peg_top - np.array([0.0, 0.0, GRIP_BELOW_TOP])
            action, dist = self.move_towards(obs, target, top_down_quat(self._yaw), OPEN)
            if dist < 0.005:
                self.advance()
        elif self.phase == CLOSE:  # close until the fingers rest on the peg
            target = peg_top - np.array([0.0, 0.0, GRIP_BELOW_TOP])
            action, _ = self.move_towards(obs, target, top_down_quat(self._yaw), CLOSED)
            peg_width = 2 * privileged[14]
            if proprio[7] < peg_width + 0.004 or self.phase_steps >= MAX_CLOSE_STEPS:
                self.advance()
        elif np.linalg.norm(peg_pos - tcp_pos) > LOST_M:  # the peg fell out of the hand
            action, _ = self.move_towards(obs, tcp_pos + np.array([0.0, 0.0, 0.01]), tcp_quat, OPEN)
            if peg_axis[2] > np.cos(STANDING_RAD):  # still standing: grasp it again
                self.phase, self.phase_steps = APPROACH, 0
        else:
            # From here on the hand moves so that the peg, as measured, goes where it should: its bottom
            # face over the hole and its faces at the hole's yaw, the hand kept top-down.
            carry_z = hole_top[2] + CARRY_CLEARANCE
            lateral = hole_top[:2] - peg_bottom[:2]
            turn = quarter_turn_wrap(grasp_yaw(hole_quat) - grasp_yaw(peg_quat))
            if self.phase == LIFT:  # straight up until the peg clears the fixture
                shift = np.array([0.0, 0.0, carry_z - peg_bottom[2]])
                turn = 0.0
                done = peg_bottom[2] > carry_z - 0.01
            elif self.phase == CARRY:  # over the hole, turned to its yaw
                shift = np.array([*lateral, carry_z - peg_bottom[2]])
                done = np.linalg.norm(lateral) < 2 * ALIGNED_M and abs(turn) < ALIGNED_RAD
            elif self.phase == ALIGN:  # just above the opening
                shift = np.array([*lateral, hole_top[2] + PRE_INSERT_CLEARANCE - peg_bottom[2]])
                done = (
                    abs(shift[2]) < 0.004 and np.linalg.norm(lateral) < ALIGNED_M and abs(turn) < ALIGNED_RAD
                )
            else:  # INSERT: push in slowly, still centring
                shift = np.array([*lateral, max(hole_top[2] - INSERT_DEPTH - peg_bottom[2], -INSERT_SPEED)])
                done = False
            quat = top_down_quat(tcp_yaw(tcp_quat) + turn)
            action, _ = self.move_towards(obs, tcp_pos + shift, quat, CLOSED)
            # carry gently: the light grasp lets the peg slip when the hand moves fast
            action[:3] = np.clip(action[:3], -CARRY_STEP_M, CARRY_STEP_M)
            action[3:6] = np.clip(action[3:6], -CARRY_STEP_RAD, CARRY_STEP_RAD)
            if done or (self.phase in (CARRY, ALIGN) and self.phase_steps >= MAX_ALIGN_STEPS):
                self.advance()
        return action
