"""Scripted experts for the four GPU-insertion stages (YAM).

Every stage is a list of phases run in order: grasp the card's handle from above, then move the card
itself (closed loop on the card pose, so grasp offsets do not matter) to where the stage wants it:

1. grasp -> lift -> over slot 1 -> align above the channel -> insert,
2. grasp -> pull out of slot 1 -> over slot 3 -> align -> insert,
3. grasp -> press down until seated,
4. grasp -> pull out of slot 3 -> over a free spot on the table -> lower -> release -> retreat.

The gripper keeps YAM's comfortable "down" orientation: pointing down, tilted 0.3 rad outwards about
the finger axis (see robots/yam.py), yawed with the card. The tilt is about the axis the fingers
close along, so the card still hangs upright in the grasp.
"""

from __future__ import annotations

from typing import Any, ClassVar

import mujoco
import numpy as np

from pld_sim.control import quat_from_rotvec
from pld_sim.experts.base import ScriptedExpert, register_expert, top_down_quat
from pld_sim.tasks import gpu_insertion as gpu

OPEN, CLOSED = -1.0, 1.0
GRIPPER_PITCH = -0.3  # rad about the finger axis: the approach leans away from the base
GRASP_BELOW_HANDLE_CENTER = 0.004  # the fingertips go this far below the handle's middle
HOVER_HEIGHT = 0.05  # above the grasp point before descending
CARRY_CLEARANCE = 0.03  # card edge above the slot housing (or the table) while carrying
ALIGN_HEIGHT = 0.006  # card edge above the housing's funnel before inserting
PUSH_BELOW_FLOOR = 0.004  # insertion target below the slot floor: keeps pressing until seated
PLACE_HEIGHT = 0.002  # card edge above the table when letting go
RETREAT_HEIGHT = 0.08
CLOSE_STEPS = 10  # the fingers close at ~0.1 m/s: 9.5 cm -> 1.6 cm in 8 steps
OPEN_STEPS = 6
DESCEND_SPEED = 0.004  # m per control step from the hover point down to the handle
INSERT_SPEED = 0.006  # m per control step (0.12 m/s) once the edge is at the funnel
ALIGN_TOLERANCE = 0.0015
LOST_GRIP_WIDTH = 0.004  # the handle is 16 mm thick
REGRASP_MAX_TILT = 0.3
PLACE_SPOT = (0.30, -0.13)
PLACE_SPOT_RANGE = 0.02


def yam_down_quat(yaw: float) -> np.ndarray:
    """TCP orientation: top-down (yaw 0 = fingers along world y), tilted about the finger axis."""
    pitched = np.empty(4)
    mujoco.mju_mulQuat(pitched, quat_from_rotvec(np.array([0.0, GRIPPER_PITCH, 0.0])), top_down_quat(np.pi))
    out = np.empty(4)
    mujoco.mju_mulQuat(out, quat_from_rotvec(np.array([0.0, 0.0, yaw])), pitched)
    return out


def _mat(quat: np.ndarray) -> np.ndarray:
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=np.float64))
    return mat.reshape(3, 3)


def card_yaw(quat: np.ndarray) -> float:
    """Yaw of the card's long axis, folded to [-pi/2, pi/2) (the card is symmetric end to end)."""
    along = _mat(quat)[:, 0]
    return fold_half_turn(float(np.arctan2(along[1], along[0])))


def fold_half_turn(angle: float) -> float:
    return float((angle + np.pi / 2) % np.pi - np.pi / 2)


def tcp_yaw(quat: np.ndarray) -> float:
    """Yaw of the TCP from its finger axis (y), which stays horizontal in `yam_down_quat`."""
    finger_axis = _mat(quat)[:, 1]
    return float(np.arctan2(-finger_axis[0], finger_axis[1]))


class GpuInsertionExpert(ScriptedExpert):
    """Phase machine shared by the four stages; subclasses list their phases."""

    phases: ClassVar[tuple[str, ...]]

    def reset(self) -> None:
        super().reset()
        offset = self.rng.uniform(-PLACE_SPOT_RANGE, PLACE_SPOT_RANGE, 2)
        self.place_spot = np.asarray(PLACE_SPOT) + offset
        self._entered = -1
        self.hold_pos = np.zeros(3)  # TCP position when the current phase began
        self.release_pos = np.zeros(3)

    # ------------------------------------------------------------------ observation helpers

    @staticmethod
    def _state(obs: dict[str, Any]) -> dict[str, np.ndarray]:
        p = np.asarray(obs["privileged"], dtype=np.float64)
        return {
            "card_pos": p[0:3],
            "card_quat": p[3:7],
            "slot1_pos": p[7:10],
            "slot1_quat": p[10:14],
            "slot3_pos": p[14:17],
            "slot3_quat": p[17:21],
        }

    def _card_action(
        self, obs: dict[str, Any], card_target: np.ndarray, yaw: float, gripper: float, speed: float = 1.0
    ) -> tuple[np.ndarray, float]:
        """Move the held card's edge-centre to `card_target` and its long axis to `yaw`."""
        s = self._state(obs)
        tcp_pos = np.asarray(obs["proprio"][:3], dtype=np.float64)
        tcp_quat = np.asarray(obs["proprio"][3:7], dtype=np.float64)
        error = card_target - s["card_pos"]
        target_yaw = tcp_yaw(tcp_quat) + fold_half_turn(yaw - card_yaw(s["card_quat"]))
        action, _ = self.move_towards(obs, tcp_pos + error, yam_down_quat(target_yaw), gripper)
        step = np.linalg.norm(action[:3])
        if step > speed:
            action[:3] *= speed / step
        return action, float(np.linalg.norm(error))

    def _grasp_point(self, s: dict[str, np.ndarray]) -> np.ndarray:
        geometry = self.env.task.geometry
        height = geometry.handle_center_z - GRASP_BELOW_HANDLE_CENTER
        return s["card_pos"] + _mat(s["card_quat"])[:, 2] * height

    def _slot_point(self, s: dict[str, np.ndarray], slot: int, height: float) -> np.ndarray:
        return s[f"slot{slot}_pos"] + _mat(s[f"slot{slot}_quat"])[:, 2] * height

    def _slot_yaw(self, s: dict[str, np.ndarray], slot: int) -> float:
        return card_yaw(s[f"slot{slot}_quat"])

    # ------------------------------------------------------------------ phases

    def plan(self, obs: dict[str, Any]) -> np.ndarray:
        if self.phase != self._entered:
            self._entered = self.phase
            self.hold_pos = np.asarray(obs["proprio"][:3], dtype=np.float64).copy()
        phase = self.phases[min(self.phase, len(self.phases) - 1)]
        if self._lost_the_card(obs, phase):  # start over from above the card
            self.phase, self.phase_steps, self._entered = 0, 0, 0
            phase = self.phases[0]
        action, done = getattr(self, f"_{phase}")(obs)
        if done and self.phase < len(self.phases) - 1:
            self.advance()
        return action

    def _lost_the_card(self, obs: dict[str, Any], phase: str) -> bool:
        """The fingers closed on nothing while the card still stands upright somewhere: grasp again."""
        if phase in (*GRASP, "release", "retreat") or obs["proprio"][7] > LOST_GRIP_WIDTH:
            return False
        up = _mat(self._state(obs)["card_quat"])[:, 2]
        return bool(up[2] > np.cos(REGRASP_MAX_TILT))

    def _hover(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        s = self._state(obs)
        target = self._grasp_point(s) + np.array([0.0, 0.0, HOVER_HEIGHT])
        action, dist = self.move_towards(obs, target, yam_down_quat(card_yaw(s["card_quat"])), OPEN)
        return action, dist < 0.008 and self.phase_steps > 3

    def _descend(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        """Slowly at the end: a fingertip that overshoots onto the cooler tips a loosely seated card."""
        s = self._state(obs)
        action, dist = self.move_towards(
            obs, self._grasp_point(s), yam_down_quat(card_yaw(s["card_quat"])), OPEN
        )
        step = np.linalg.norm(action[:3])
        if step > DESCEND_SPEED:
            action[:3] *= DESCEND_SPEED / step
        return action, dist < 0.003

    def _close(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        s = self._state(obs)
        action, _ = self.move_towards(
            obs, self._grasp_point(s), yam_down_quat(card_yaw(s["card_quat"])), CLOSED
        )
        return action, self.phase_steps >= CLOSE_STEPS

    def _lift_from_table(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        s = self._state(obs)
        height = gpu.BOARD_THICKNESS + gpu.HOUSING_TOP + CARRY_CLEARANCE
        target = np.array([*s["card_pos"][:2], height])
        action, dist = self._card_action(obs, target, card_yaw(s["card_quat"]), CLOSED)
        return action, dist < 0.01

    def _pull_out(self, obs: dict[str, Any], slot: int) -> tuple[np.ndarray, bool]:
        s = self._state(obs)
        target = self._slot_point(s, slot, gpu.HOUSING_TOP + CARRY_CLEARANCE)
        action, dist = self._card_action(obs, target, self._slot_yaw(s, slot), CLOSED, speed=0.01)
        return action, dist < 0.01

    def _pull_out_of_slot1(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        return self._pull_out(obs, 1)

    def _pull_out_of_slot3(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        return self._pull_out(obs, 3)

    def _over(
        self, obs: dict[str, Any], slot: int, height: float, tolerance: float
    ) -> tuple[np.ndarray, bool]:
        s = self._state(obs)
        target = self._slot_point(s, slot, height)
        action, dist = self._card_action(obs, target, self._slot_yaw(s, slot), CLOSED)
        yaw_error = abs(fold_half_turn(self._slot_yaw(s, slot) - card_yaw(s["card_quat"])))
        return action, dist < tolerance and yaw_error < 0.02

    def _carry_to_slot1(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        return self._over(obs, 1, gpu.HOUSING_TOP + CARRY_CLEARANCE, 0.01)

    def _carry_to_slot3(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        return self._over(obs, 3, gpu.HOUSING_TOP + CARRY_CLEARANCE, 0.01)

    def _align_slot1(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        return self._over(obs, 1, gpu.HOUSING_TOP + ALIGN_HEIGHT, ALIGN_TOLERANCE)

    def _align_slot3(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        return self._over(obs, 3, gpu.HOUSING_TOP + ALIGN_HEIGHT, ALIGN_TOLERANCE)

    def _insert(self, obs: dict[str, Any], slot: int) -> tuple[np.ndarray, bool]:
        s = self._state(obs)
        target = self._slot_point(s, slot, -PUSH_BELOW_FLOOR)
        action, _ = self._card_action(obs, target, self._slot_yaw(s, slot), CLOSED, speed=INSERT_SPEED)
        return action, False

    def _insert_slot1(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        return self._insert(obs, 1)

    def _insert_slot3(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        return self._insert(obs, 3)

    def _carry_to_table(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        target = np.array([*self.place_spot, gpu.BOARD_THICKNESS + gpu.HOUSING_TOP + CARRY_CLEARANCE])
        action, dist = self._card_action(obs, target, 0.0, CLOSED)
        return action, dist < 0.01

    def _lower_to_table(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        target = np.array([*self.place_spot, PLACE_HEIGHT])
        action, dist = self._card_action(obs, target, 0.0, CLOSED, speed=0.01)
        return action, dist < 0.003

    def _release(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        quat = np.asarray(obs["proprio"][3:7], dtype=np.float64)
        self.release_pos = self.hold_pos
        action, _ = self.move_towards(obs, self.hold_pos, quat, OPEN)
        return action, self.phase_steps >= OPEN_STEPS

    def _retreat(self, obs: dict[str, Any]) -> tuple[np.ndarray, bool]:
        quat = np.asarray(obs["proprio"][3:7], dtype=np.float64)
        target = self.release_pos + np.array([0.0, 0.0, RETREAT_HEIGHT])
        action, _ = self.move_towards(obs, target, quat, OPEN)
        return action, False


GRASP = ("hover", "descend", "close")


@register_expert
class GpuInsertionStage1Expert(GpuInsertionExpert):
    task = "gpu_insertion_stage1"
    phases = (*GRASP, "lift_from_table", "carry_to_slot1", "align_slot1", "insert_slot1")


@register_expert
class GpuInsertionAliasExpert(GpuInsertionStage1Expert):
    task = "gpu_insertion"


@register_expert
class GpuInsertionStage2Expert(GpuInsertionExpert):
    task = "gpu_insertion_stage2"
    phases = (*GRASP, "pull_out_of_slot1", "carry_to_slot3", "align_slot3", "insert_slot3")


@register_expert
class GpuInsertionStage3Expert(GpuInsertionExpert):
    task = "gpu_insertion_stage3"
    phases = (*GRASP, "insert_slot3")


@register_expert
class GpuInsertionStage4Expert(GpuInsertionExpert):
    task = "gpu_insertion_stage4"
    phases = (*GRASP, "pull_out_of_slot3", "carry_to_table", "lower_to_table", "release", "retreat")
