"""Scripted experts: waypoint controllers on privileged state, our stand-in for human teleoperation.

Knobs: `noise` (std of Gaussian action noise, as a fraction of the action limits) and `hesitation`
(probability per step of pausing for a few steps, plus overshooting waypoints), so that datasets can
be made deliberately imperfect.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from pld_sim.control import orientation_error, quat_from_rotvec
from pld_sim.registry import Registry


@dataclass(frozen=True)
class ExpertConfig:
    noise: float = 0.0
    hesitation: float = 0.0
    gain: float = 0.6  # fraction of the remaining error corrected per step

    def __post_init__(self) -> None:
        if not (0.0 <= self.noise <= 1.0 and 0.0 <= self.hesitation <= 1.0 and 0.0 < self.gain <= 1.0):
            raise ValueError("noise and hesitation must be in [0, 1], gain in (0, 1]")


class ScriptedExpert(ABC):
    task: ClassVar[str]

    def __init__(self, env, cfg: ExpertConfig | None = None, seed: int | None = None) -> None:
        self.env = env
        self.cfg = cfg or ExpertConfig()
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.phase = 0
        self.phase_steps = 0
        self._pause = 0
        self.intended_action: np.ndarray | None = None  # set by `act`

    @abstractmethod
    def plan(self, obs: dict[str, Any]) -> np.ndarray:
        """The noiseless action for this step (advances the phase machine)."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        limits = self.env.cfg.limits
        if self._pause > 0:
            self._pause -= 1
            action = np.zeros(7)
            action[6] = self._last_gripper
            self.intended_action = action.copy()
            return action
        if self.cfg.hesitation and self.rng.random() < self.cfg.hesitation * 0.1:
            self._pause = int(self.rng.integers(2, 6))
        action = self.plan(obs)
        self.phase_steps += 1
        # what the expert meant this step, before noise: the label of DART-style demonstrations, which run
        # the noisy action (visiting off-course states) but teach the correction back
        self.intended_action = np.clip(action, limits.low, limits.high)
        if self.cfg.noise:
            action[:6] += self.rng.normal(0.0, self.cfg.noise, 6) * limits.high[:6]
        self._last_gripper = action[6]
        return np.clip(action, limits.low, limits.high)

    def advance(self) -> None:
        self.phase += 1
        self.phase_steps = 0

    def move_towards(
        self, obs: dict[str, Any], target_pos: np.ndarray, target_quat: np.ndarray, gripper: float
    ) -> tuple[np.ndarray, float]:
        """Action towards a TCP pose and the remaining position error (m)."""
        proprio = obs["proprio"]
        pos, quat = proprio[:3].astype(np.float64), proprio[3:7].astype(np.float64)
        error = target_pos - pos
        if self.cfg.hesitation:
            error *= 1.0 + self.cfg.hesitation * 0.3  # overshoot
        rot = orientation_error(target_quat, quat)
        action = np.concatenate([self.cfg.gain * error, self.cfg.gain * rot, [gripper]])
        return action, float(np.linalg.norm(target_pos - pos))


def top_down_quat(yaw: float) -> np.ndarray:
    """TCP pointing down (z axis to -z world), rotated by `yaw` about the world z axis."""
    down = np.array([0.0, 1.0, 0.0, 0.0])  # 180 deg about x
    yaw_rot = quat_from_rotvec(np.array([0.0, 0.0, yaw]))
    out = np.empty(4)
    import mujoco

    mujoco.mju_mulQuat(out, yaw_rot, down)
    return out


def grasp_yaw(object_quat: np.ndarray, symmetry: float = np.pi / 2) -> float:
    """Yaw of an object about world z, folded to the interval nearest 0 for its symmetry."""
    w, x, y, z = object_quat
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return float((yaw + symmetry / 2) % symmetry - symmetry / 2)


EXPERTS: Registry[type[ScriptedExpert]] = Registry("scripted expert")


def register_expert(cls: type[ScriptedExpert]) -> type[ScriptedExpert]:
    return EXPERTS.add(cls.task, cls)


def make_expert(env, cfg: ExpertConfig | None = None, seed: int | None = None) -> ScriptedExpert:
    return EXPERTS.lookup(env.task.name)(env, cfg, seed)
