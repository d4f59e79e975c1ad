"""The 7-D control interface: delta end-effector pose + gripper, executed by differential IK.

action = [dx, dy, dz, drx, dry, drz, gripper]: translation (m) and rotation vector (rad) of the TCP
per control step, in the robot base frame, and a gripper command in [-1 (open), 1 (closed)].
Each component is clipped to `ActionLimits`; NaN, inf or a wrong shape is a `ValueError`.
The IK is damped least squares on the TCP twist, with a null-space pull towards the home posture and
joint-limit clipping, solved on a scratch `MjData` so the simulation state is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

ACTION_DIM = 7


@dataclass(frozen=True)
class ActionLimits:
    """Largest change per control step (20 Hz): 2 cm and 0.1 rad, i.e. 0.4 m/s and 2 rad/s."""

    max_translation_m: float = 0.02
    max_rotation_rad: float = 0.1

    def __post_init__(self) -> None:
        if self.max_translation_m <= 0 or self.max_rotation_rad <= 0:
            raise ValueError("action limits must be positive")

    @property
    def low(self) -> np.ndarray:
        return -self.high

    @property
    def high(self) -> np.ndarray:
        t, r = self.max_translation_m, self.max_rotation_rad
        return np.array([t, t, t, r, r, r, 1.0])


def validate_action(action: object) -> np.ndarray:
    """Return `action` as a float64 array of shape (7,), or raise a ValueError that says what is wrong."""
    try:
        array = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action must be 7 numbers, got {action!r}") from exc
    if array.shape != (ACTION_DIM,):
        raise ValueError(f"action must have shape ({ACTION_DIM},), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"action contains NaN or inf: {array.tolist()}")
    return array


def clip_action(action: np.ndarray, limits: ActionLimits) -> np.ndarray:
    high = limits.high
    return np.minimum(np.maximum(action, -high), high)


def quat_from_rotvec(rotvec: np.ndarray) -> np.ndarray:
    quat = np.empty(4)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    mujoco.mju_axisAngle2Quat(quat, rotvec / angle, angle)
    return quat


def orientation_error(target_quat: np.ndarray, current_quat: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame) that takes `current` to `target`."""
    conj = np.empty(4)
    mujoco.mju_negQuat(conj, current_quat)
    diff = np.empty(4)
    mujoco.mju_mulQuat(diff, target_quat, conj)
    error = np.empty(3)
    mujoco.mju_quat2Vel(error, diff, 1.0)
    return error


@dataclass(frozen=True)
class IKConfig:
    damping: float = 1e-3
    iterations: int = 1  # one DLS step per control step; the next step corrects what is left
    nullspace_gain: float = 0.1
    # rotation error weight relative to translation (m vs rad)
    rotation_weight: float = 0.3


class DifferentialIK:
    """Joint position targets that move the TCP site by a delta pose."""

    def __init__(
        self,
        model: mujoco.MjModel,
        site: str,
        joints: tuple[str, ...],
        home: np.ndarray,
        cfg: IKConfig = IKConfig(),
    ) -> None:
        self.model = model
        self.cfg = cfg
        self.site_id = model.site(site).id
        joint_ids = [model.joint(j).id for j in joints]
        self.qpos_idx = np.array([model.jnt_qposadr[j] for j in joint_ids])
        self.dof_idx = np.array([model.jnt_dofadr[j] for j in joint_ids])
        self.lower = model.jnt_range[joint_ids, 0].copy()
        self.upper = model.jnt_range[joint_ids, 1].copy()
        self.home = np.asarray(home, dtype=np.float64)
        self._scratch = mujoco.MjData(model)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self.last_error = np.zeros(6)
        self._damping_eye = cfg.damping * np.eye(6)
        self._weight = np.array([1.0, 1.0, 1.0] + [cfg.rotation_weight] * 3)

    def tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and quaternion (w, x, y, z) in the world (= robot base) frame."""
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[self.site_id])
        return data.site_xpos[self.site_id].copy(), quat

    def solve(self, data: mujoco.MjData, target_pos: np.ndarray, target_quat: np.ndarray) -> np.ndarray:
        """Joint targets reaching (target_pos, target_quat), starting from the current joints."""
        scratch = self._scratch
        scratch.qpos[:] = data.qpos
        q = data.qpos[self.qpos_idx].copy()
        weight = self._weight
        for _ in range(self.cfg.iterations):
            scratch.qpos[self.qpos_idx] = q
            mujoco.mj_kinematics(self.model, scratch)
            mujoco.mj_comPos(self.model, scratch)
            pos, quat = self.tcp_pose(scratch)
            error = np.concatenate([target_pos - pos, orientation_error(target_quat, quat)])
            mujoco.mj_jacSite(self.model, scratch, self._jacp, self._jacr, self.site_id)
            jac = np.concatenate([self._jacp[:, self.dof_idx], self._jacr[:, self.dof_idx]]) * weight[:, None]
            e = error * weight
            pinv = jac.T @ np.linalg.inv(jac @ jac.T + self._damping_eye)
            # null-space pull towards home keeps the redundant DoF (FR3's elbow) from drifting
            posture = self.cfg.nullspace_gain * (self.home - q)
            dq = pinv @ e + posture - pinv @ (jac @ posture)
            q = np.minimum(np.maximum(q + dq, self.lower), self.upper)
        self.last_error = error
        return q


def apply_delta(pos: np.ndarray, quat: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Target pose = current pose moved by delta[:3] and rotated (world frame) by rotvec delta[3:6]."""
    rot = quat_from_rotvec(delta[3:6])
    new_quat = np.empty(4)
    mujoco.mju_mulQuat(new_quat, rot, quat)
    return pos + delta[:3], new_quat
