"""The simulated robot as a `gymnasium.Env`: the same 7-D control and observations as the real robots.

One control step (default 20 Hz) = validate and clip the action, move the commanded TCP pose by it,
solve differential IK into joint position targets, step the physics. Observations: two cameras
(`side`, `wrist`) and the task's own (`Task.extra_cameras`), proprioception, privileged object state
(evaluation only) and the instruction.
Resets are deterministic in the seed (same seed -> same initial state and same first frame).
"""

from __future__ import annotations

import string
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from pld_sim.control import (
    ACTION_DIM,
    ActionLimits,
    DifferentialIK,
    apply_delta,
    clip_action,
    orientation_error,
    validate_action,
)
from pld_sim.randomization import DomainRandomization, Variation
from pld_sim.robots import RobotSpec, get_robot
from pld_sim.scene import ROBOT_PREFIX, build_scene, task_cameras
from pld_sim.tasks import Task, make_task

# The commanded TCP target may lead the measured TCP by at most this much (no wind-up when blocked).
MAX_TARGET_LEAD_M = 0.05
STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
# Geom groups the cameras show: 0/1 scene objects, 2 detailed robot visuals, 3 robot collision meshes.
VISUAL_GROUPS = {"fast": (1, 1, 0, 1, 0, 0), "full": (1, 1, 1, 0, 0, 0)}


@dataclass(frozen=True)
class SimConfig:
    """Simulation options of one environment."""

    image_size: int = 128  # both cameras at 128 px still run > 150 control steps/s on 2 cores (pld bench sim)
    render_images: bool = True
    control_hz: float = 20.0
    physics_dt: float = 0.005
    # "fast": cameras render collision meshes (~3 ms/frame on CPU); "full": the detailed visual meshes
    visual_detail: str = "fast"
    time_limit_s: float | None = None  # None: the task's own limit
    terminate_on_success: bool = True
    limits: ActionLimits = field(default_factory=ActionLimits)
    randomization: DomainRandomization = field(default_factory=DomainRandomization)

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {self.image_size}")
        if self.control_hz <= 0 or self.physics_dt <= 0:
            raise ValueError("control_hz and physics_dt must be positive")
        substeps = 1.0 / (self.control_hz * self.physics_dt)
        if abs(substeps - round(substeps)) > 1e-6 or round(substeps) < 1:
            raise ValueError(f"1 / (control_hz * physics_dt) must be a whole number, got {substeps:.3f}")
        if self.visual_detail not in VISUAL_GROUPS:
            raise ValueError(
                f"visual_detail must be one of {sorted(VISUAL_GROUPS)}, got {self.visual_detail!r}"
            )
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ValueError("time_limit_s must be positive")

    @property
    def substeps(self) -> int:
        return round(1.0 / (self.control_hz * self.physics_dt))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimConfig:
        values = dict(values)
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown simulation options: {sorted(unknown)}")
        if isinstance(values.get("limits"), dict):
            values["limits"] = ActionLimits(**values["limits"])
        if isinstance(values.get("randomization"), dict):
            values["randomization"] = DomainRandomization.from_dict(values["randomization"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PldSimEnv(gym.Env):
    """A task of the registry on its robot; see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self, task: str, cfg: SimConfig | None = None, render_mode: str | None = "rgb_array"
    ) -> None:
        self.cfg = cfg or SimConfig()
        self.task: Task = make_task(task)
        self.robot: RobotSpec = get_robot(self.task.robot)
        self.cameras = task_cameras(self.task)  # observation name -> MuJoCo camera
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.cfg.control_hz}
        limit_s = self.cfg.time_limit_s or self.task.time_limit_s
        self.time_limit_steps = round(limit_s * self.cfg.control_hz)
        self._variation = Variation()
        self._build(self._variation)
        self.action_space = gym.spaces.Box(
            self.cfg.limits.low.astype(np.float32),
            self.cfg.limits.high.astype(np.float32),
            (ACTION_DIM,),
            np.float32,
        )
        size = self.cfg.image_size
        spaces: dict[str, gym.Space] = {
            "proprio": gym.spaces.Box(-np.inf, np.inf, (len(self.proprio_names),), np.float32),
            "privileged": gym.spaces.Box(
                -np.inf, np.inf, self.task.privileged_state(self.model, self.data).shape, np.float32
            ),
            "instruction": gym.spaces.Text(max_length=256, charset=string.printable),
        }
        if self.cfg.render_images:
            spaces["images"] = gym.spaces.Dict(
                {name: gym.spaces.Box(0, 255, (size, size, 3), np.uint8) for name in self.cameras}
            )
        self.observation_space = gym.spaces.Dict(spaces)
        self.step_count = 0

    # ------------------------------------------------------------------ model

    def _build(self, variation: Variation) -> None:
        self.model = build_scene(self.task, self.robot, variation, self.cfg.physics_dt, self.cfg.image_size)
        self.data = mujoco.MjData(self.model)
        prefixed = lambda names: tuple(ROBOT_PREFIX + n for n in names)  # noqa: E731
        self._arm_actuators = np.array(
            [self.model.actuator(a).id for a in prefixed(self.robot.arm_actuators)]
        )
        self._gripper_actuator = self.model.actuator(ROBOT_PREFIX + self.robot.gripper_actuator).id
        arm_joints = [self.model.joint(j) for j in prefixed(self.robot.arm_joints)]
        self._arm_qpos = np.array([self.model.jnt_qposadr[j.id] for j in arm_joints])
        self._gripper_qpos = np.array(
            [self.model.jnt_qposadr[self.model.joint(j).id] for j in prefixed(self.robot.gripper_joints)]
        )
        start = self.task.start_qpos or self.robot.home_qpos
        self.ik = DifferentialIK(
            self.model, ROBOT_PREFIX + self.robot.tcp_site, prefixed(self.robot.arm_joints), np.asarray(start)
        )
        # Velocity feed-forward for the position actuators (force = kp (ctrl - q) - kv qdot): leading the
        # joint target by kv/kp times the desired joint velocity removes the steady lag kv/kp * qdot.
        bias = self.model.actuator_biasprm[self._arm_actuators]
        kp, kv = -bias[:, 1], -bias[:, 2]
        self._feedforward_s = np.divide(kv, kp, out=np.zeros_like(kp), where=kp > 0)
        self._renderer: mujoco.Renderer | None = None
        self._variation = variation

    @property
    def proprio_names(self) -> list[str]:
        return ["tcp_x", "tcp_y", "tcp_z", "tcp_qw", "tcp_qx", "tcp_qy", "tcp_qz", "gripper_width"] + [
            f"{j}_pos" for j in self.robot.arm_joints
        ]

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        options = options or {}
        if "state" in options:
            self.set_state(options["state"])
            return self._observation(), self._info()
        variation = self.cfg.randomization.sample(self.np_random)
        if variation != self._variation:
            self._build(variation)
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        start = np.asarray(self.task.start_qpos or self.robot.home_qpos)
        data.qpos[self._arm_qpos] = start
        data.ctrl[self._arm_actuators] = start
        self._joint_target = start.astype(np.float64)
        data.ctrl[self._gripper_actuator] = self.robot.gripper_ctrl(-1.0)
        data.qpos[self._gripper_qpos] = self._open_finger_qpos()
        self.task.reset(model, data, self.np_random)
        mujoco.mj_forward(model, data)
        self._target_pos, self._target_quat = self.ik.tcp_pose(data)
        self.step_count = 0
        return self._observation(), self._info()

    def step(self, action: object) -> tuple[dict, float, bool, bool, dict]:
        command = clip_action(validate_action(action), self.cfg.limits)
        model, data = self.model, self.data
        tcp_pos = data.site_xpos[self.ik.site_id]
        target_pos, target_quat = apply_delta(self._target_pos, self._target_quat, command)
        lead = target_pos - tcp_pos
        if np.linalg.norm(lead) > MAX_TARGET_LEAD_M:
            target_pos = tcp_pos + lead * (MAX_TARGET_LEAD_M / np.linalg.norm(lead))
        self._target_pos, self._target_quat = target_pos, target_quat
        joint_target = self.ik.solve(data, target_pos, target_quat)
        joint_velocity = (joint_target - self._joint_target) * self.cfg.control_hz
        self._joint_target = joint_target
        data.ctrl[self._arm_actuators] = joint_target + self._feedforward_s * joint_velocity
        data.ctrl[self._gripper_actuator] = self.robot.gripper_ctrl(command[6])
        mujoco.mj_step(model, data, nstep=self.cfg.substeps)
        if not (np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))):
            raise RuntimeError(
                f"{self.task.name}: the simulation diverged (NaN/inf state) at step {self.step_count}"
            )
        self.step_count += 1
        terms = self.task.success_terms(model, data)
        success = self.task.success_from_terms(terms)
        terminated = success and self.cfg.terminate_on_success
        truncated = self.step_count >= self.time_limit_steps and not terminated
        return self._observation(), float(success), terminated, truncated, self._info(terms)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._render_camera("side")

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict[str, Any]:
        """Everything needed to restart an episode from this moment (physics, task, commanded target)."""
        physics = np.empty(mujoco.mj_stateSize(self.model, STATE_SPEC))
        mujoco.mj_getState(self.model, self.data, physics, STATE_SPEC)
        return {
            "task": self.task.name,
            "physics": physics,
            "task_state": self.task.task_state(),
            "step": self.step_count,
            "target_pos": self._target_pos.copy(),
            "target_quat": self._target_quat.copy(),
            "joint_target": self._joint_target.copy(),
            "variation": asdict(self._variation),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("task") != self.task.name:
            raise ValueError(f"state is for task {state.get('task')!r}, this env runs {self.task.name!r}")
        variation = Variation(
            **{k: tuple(v) if isinstance(v, list | tuple) else v for k, v in state["variation"].items()}
        )
        if variation != self._variation:
            self._build(variation)
        physics = np.asarray(state["physics"], dtype=np.float64)
        if physics.shape != (mujoco.mj_stateSize(self.model, STATE_SPEC),):
            raise ValueError(
                f"physics state has shape {physics.shape}, this model needs "
                f"({mujoco.mj_stateSize(self.model, STATE_SPEC)},)"
            )
        self.task.set_task_state(state["task_state"])
        mujoco.mj_setState(self.model, self.data, physics, STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)
        self.step_count = int(state["step"])
        self._target_pos = np.asarray(state["target_pos"], dtype=np.float64).copy()
        self._target_quat = np.asarray(state["target_quat"], dtype=np.float64).copy()
        self._joint_target = np.asarray(state["joint_target"], dtype=np.float64).copy()

    # ------------------------------------------------------------------ observations

    def _open_finger_qpos(self) -> np.ndarray:
        joints = [self.model.joint(ROBOT_PREFIX + j).id for j in self.robot.gripper_joints]
        return self.model.jnt_range[joints, 1]

    def gripper_width(self) -> float:
        return float(np.sum(self.data.qpos[self._gripper_qpos]) * self.robot.gripper_width_per_joint)

    def proprio(self) -> np.ndarray:
        pos, quat = self.ik.tcp_pose(self.data)
        return np.concatenate([pos, quat, [self.gripper_width()], self.data.qpos[self._arm_qpos]]).astype(
            np.float32
        )

    def _render_camera(self, name: str) -> np.ndarray:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.cfg.image_size, self.cfg.image_size)
            self._scene_option = mujoco.MjvOption()
            self._scene_option.geomgroup[:] = VISUAL_GROUPS[self.cfg.visual_detail]
        self._renderer.update_scene(self.data, camera=self.cameras[name], scene_option=self._scene_option)
        return self._renderer.render()

    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {
            "proprio": self.proprio(),
            "privileged": self.task.privileged_state(self.model, self.data).astype(np.float32),
            "instruction": self.task.instruction(),
        }
        if self.cfg.render_images:
            obs["images"] = {name: self._render_camera(name) for name in self.cameras}
        return obs

    def _info(self, terms: dict[str, float] | None = None) -> dict[str, Any]:
        if terms is None:
            terms = self.task.success_terms(self.model, self.data)
        success = self.task.success_from_terms(terms)
        tcp_pos, tcp_quat = self.ik.tcp_pose(self.data)
        return {
            "success": success,
            "is_success": success,
            "task": self.task.name,
            "instruction": self.task.instruction(),
            "step": self.step_count,
            "success_terms": terms,
            "ik_tracking_error_m": float(np.linalg.norm(self._target_pos - tcp_pos)),
            "ik_tracking_error_rad": float(np.linalg.norm(orientation_error(self._target_quat, tcp_quat))),
        }


def make(task: str, **cfg: Any) -> PldSimEnv:
    """`pld_sim.make("pick_cube", image_size=96)`: an env of a registered task with SimConfig options."""
    render_mode = cfg.pop("render_mode", "rgb_array")
    return PldSimEnv(task, SimConfig.from_dict(cfg) if cfg else SimConfig(), render_mode=render_mode)
