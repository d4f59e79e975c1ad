"""The simulated robot behind the sim hardware node, free of ROS so it can be tested and composed directly.

A `SimDriver` wraps one `PldSimEnv` and behaves like a robot driver, not like a gymnasium env: it never
raises on a bad command (a robot must not fall over because one message was corrupt). An invalid
command (NaN, inf, wrong length) is rejected and counted, and the arm HOLDS for that control step:
zero delta pose, last valid gripper command. Episodes are started by `reset(task, seed, stage)`,
which rebuilds the env only when the task changes. Sim time is kept in integer nanoseconds and never
goes backwards across resets (ROS nodes using /clock would otherwise see time jump back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from pld_sim.control import ACTION_DIM, validate_action
from pld_sim.env import VISUAL_GROUPS, PldSimEnv, SimConfig
from pld_sim.scene import ROBOT_PREFIX
from pld_sim.tasks import TASKS

MODES = ("lockstep", "realtime")
# Seeds drawn when a reset asks for one (negative seed): non-negative and fit an int64 / int32 alike.
_MAX_DRAWN_SEED = 2**31 - 1


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class SimDriverConfig:
    """Options of the sim hardware node and its driver; each field is one ROS parameter of `sim_node`."""

    task: str = field(default="pick_cube", metadata=_help("task of the registry to start with"))
    stage: int = field(default=0, metadata=_help("stage to start with (k > 0 -> '<task>_stage<k>')"))
    seed: int = field(default=0, metadata=_help("seed of the first episode; later draws derive from it"))
    mode: str = field(
        default="lockstep",
        metadata=_help("lockstep: one control step per command; realtime: wall-clock timer at control_hz"),
    )
    image_size: int = field(default=SimConfig.image_size, metadata=_help("camera image size in px"))
    control_hz: float = field(
        default=20.0, metadata=_help("control rate (one step = 1/control_hz of sim time)")
    )
    frame_id: str = field(default="", metadata=_help("robot base frame of the headers; '' = model root body"))
    command_timeout_s: float = field(
        default=0.1, metadata=_help("realtime: hold when the newest command is older than this (wall clock)")
    )
    publish_phase_s: float = field(
        default=0.0,
        metadata=_help(
            "realtime: publish each step's state this long after its tick, like a camera's fixed "
            "capture-to-delivery latency, so that step and render time do not jitter the stream; "
            "0 = as soon as rendered (a step that takes longer than the phase publishes when done)"
        ),
    )
    visual_detail: str = field(default="fast", metadata=_help("camera meshes: 'fast' (collision) or 'full'"))
    publish_clock: bool = field(default=True, metadata=_help("publish sim time on /clock"))
    reward_topic: str = field(
        default="",
        metadata=_help(
            "publish the task's success predicate as pld_interfaces/Reward on this topic after every "
            "step ('' = not at all; 'reward' when no classifier runs, 'predicate_reward' beside one)"
        ),
    )
    status_period_s: float = field(default=1.0, metadata=_help("period of the sim_status topic (wall clock)"))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = type(f.default)
            ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
            if expected is float:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok:
                raise ValueError(f"{f.name} must be a {expected.__name__}, got {value!r}")
        if not self.task:
            raise ValueError("task must not be empty")
        if self.stage < 0:
            raise ValueError(f"stage must be >= 0, got {self.stage}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.visual_detail not in VISUAL_GROUPS:
            raise ValueError(
                f"visual_detail must be one of {sorted(VISUAL_GROUPS)}, got {self.visual_detail!r}"
            )
        if self.command_timeout_s <= 0 or self.status_period_s <= 0:
            raise ValueError("command_timeout_s and status_period_s must be positive")
        self.sim_config()  # image_size and control_hz are validated where they are used
        if not 0.0 <= self.publish_phase_s < 1.0 / self.control_hz:
            raise ValueError(
                f"publish_phase_s ({self.publish_phase_s} s) must be >= 0 and shorter than one control "
                f"period (1/control_hz = {1.0 / self.control_hz} s)"
            )
        if self.command_timeout_s < 1.0 / self.control_hz:
            raise ValueError(
                f"command_timeout_s ({self.command_timeout_s} s) must be at least one control period "
                f"(1/control_hz = {1.0 / self.control_hz} s), or realtime mode would only ever hold"
            )

    def sim_config(self) -> SimConfig:
        """The env options this driver runs with (physics step and action limits stay the env's own)."""
        return SimConfig(
            image_size=self.image_size,
            control_hz=float(self.control_hz),
            visual_detail=self.visual_detail,
            terminate_on_success=False,  # a robot does not stop at success; the episode manager decides
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SimDriverConfig:
        values = dict(values)
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown sim driver options: {sorted(unknown)}")
        for f in fields(cls):  # ROS parameters and YAML give ints where floats are meant
            value = values.get(f.name)
            if isinstance(f.default, float) and isinstance(value, int) and not isinstance(value, bool):
                values[f.name] = float(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_task(task: str, stage: int, known: Mapping[str, object] | None = None) -> str:
    """Registry name of (task, stage) as the Reset service gives them: stage k > 0 -> '<task>_stage<k>'."""
    known = TASKS if known is None else known
    if stage < 0:
        raise ValueError(f"stage must be >= 0, got {stage}")
    if stage > 0:
        staged = task if task.endswith(f"_stage{stage}") else f"{task}_stage{stage}"
        if staged in known:
            return staged
        raise ValueError(
            f"task {task!r} has no stage {stage} ({staged!r} is not registered); known tasks: {sorted(known)}"
        )
    if task not in known:
        raise ValueError(f"unknown task {task!r}; known tasks: {sorted(known)}")
    return task


@dataclass
class DriverStats:
    """Counters a robot operator needs to see (exposed by the node on `sim_status`)."""

    steps: int = 0  # control steps taken since start (all episodes)
    accepted: int = 0  # steps driven by a valid command
    rejected: int = 0  # invalid commands (NaN, inf, wrong length); each one led to a hold
    holds: int = 0  # steps with zero delta and the last valid gripper command
    stale_commands: int = 0  # lockstep: commands answering an older observation, dropped (not stepped)
    last_reject_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SimDriver:
    """One simulated robot: apply commands, hold, reset episodes, report joints, images and sim time."""

    def __init__(self, cfg: SimDriverConfig | None = None) -> None:
        self.cfg = cfg or SimDriverConfig()
        self.stats = DriverStats()
        self._seed_rng = np.random.default_rng(self.cfg.seed)
        self._base_task = self.cfg.task
        self.stage = self.cfg.stage
        self.env = self._make_env(resolve_task(self.cfg.task, self.cfg.stage))
        self.period_ns = round(1e9 / self.cfg.control_hz)
        self._time_offset_ns = 0
        self.episode_id = 0  # 0 until the first reset request: "no episode running" (Observation.msg)
        self._start_episode(self.cfg.seed)

    # ------------------------------------------------------------------ commands

    def screen(self, action: object) -> np.ndarray | None:
        """The action as a (7,) float array, or None (counted as rejected) when it must not be executed."""
        try:
            return validate_action(action)
        except ValueError as exc:
            self.stats.rejected += 1
            self.stats.last_reject_reason = str(exc)
            return None

    def apply(self, action: object) -> bool:
        """Advance one control step with `action`; an invalid action is not applied and the arm holds."""
        command = self.screen(action)
        if command is None:
            self.hold()
            return False
        self._step(command)
        self.stats.accepted += 1
        self._gripper = float(np.clip(command[ACTION_DIM - 1], -1.0, 1.0))
        return True

    def hold(self) -> None:
        """Advance one control step keeping the commanded pose and the last valid gripper command."""
        command = np.zeros(ACTION_DIM)
        command[ACTION_DIM - 1] = self._gripper
        self._step(command)
        self.stats.holds += 1

    def _step(self, command: np.ndarray) -> None:
        obs, _, _, _, info = self.env.step(command)
        self._obs, self.last_info = obs, info
        self.stats.steps += 1

    # ------------------------------------------------------------------ episodes

    def reset(self, task: str = "", seed: int | None = None, stage: int = 0) -> tuple[int, str]:
        """Start a new episode; returns (seed used, instruction). Empty task keeps the current one.

        A negative or missing seed draws one from the driver's own generator (seeded by `cfg.seed`), so
        a run of resets is reproducible. Unknown tasks raise ValueError and leave the episode untouched.
        """
        base = task or self._base_task
        name = resolve_task(base, stage)
        if seed is None or seed < 0:
            seed = int(self._seed_rng.integers(0, _MAX_DRAWN_SEED))
        previous_ns = self.sim_time_ns
        if name != self.env.task.name:
            env = self._make_env(name)
            self.env.close()
            self.env = env
        self._base_task, self.stage = base, stage
        # the reset itself takes one control period, so the first observation is stamped after the last
        self._time_offset_ns = previous_ns + self.period_ns
        self.episode_id += 1
        self._start_episode(seed)
        return seed, self.instruction

    def _make_env(self, name: str) -> PldSimEnv:
        env = PldSimEnv(name, self.cfg.sim_config())
        model = env.model
        joints = [model.joint(ROBOT_PREFIX + j) for j in self.joint_names_of(env)]
        self._qpos_idx = np.array([model.jnt_qposadr[j.id] for j in joints])
        self._dof_idx = np.array([model.jnt_dofadr[j.id] for j in joints])
        return env

    def _start_episode(self, seed: int) -> None:
        self._obs, self.last_info = self.env.reset(seed=int(seed))
        self.seed = int(seed)
        self._gripper = -1.0  # the env opens the gripper at reset

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ state for publishing

    @property
    def observation(self) -> dict[str, Any]:
        """The newest observation dict of the env (images, proprio, privileged, instruction)."""
        return self._obs

    @property
    def task_name(self) -> str:
        return self.env.task.name

    @property
    def instruction(self) -> str:
        return self.env.task.instruction()

    @property
    def step(self) -> int:
        """Control steps since the last reset."""
        return self.env.step_count

    @property
    def proprio_names(self) -> list[str]:
        return self.env.proprio_names

    @property
    def camera_names(self) -> list[str]:
        return list(self._obs.get("images", {}))

    @property
    def frame_id(self) -> str:
        """Robot base frame: configured, or the root body of the robot model (e.g. 'base')."""
        if self.cfg.frame_id:
            return self.cfg.frame_id
        model = self.env.model
        for body in range(1, model.nbody):
            name = model.body(body).name
            if model.body_parentid[body] == 0 and name.startswith(ROBOT_PREFIX):
                return name[len(ROBOT_PREFIX) :]
        return "world"

    @staticmethod
    def joint_names_of(env: PldSimEnv) -> list[str]:
        return [*env.robot.arm_joints, *env.robot.gripper_joints]

    @property
    def joint_names(self) -> list[str]:
        return self.joint_names_of(self.env)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions (rad / m), velocities and actuator efforts of `joint_names`, as for joint_states."""
        data = self.env.data
        return (
            data.qpos[self._qpos_idx].copy(),
            data.qvel[self._dof_idx].copy(),
            data.qfrc_actuator[self._dof_idx].copy(),
        )

    @property
    def sim_time_ns(self) -> int:
        """Sim time since the driver started, monotonic across resets and task changes."""
        return self._time_offset_ns + round(self.env.data.time * 1e9)

    def status(self) -> dict[str, Any]:
        """What the node reports on `sim_status`."""
        return {
            "mode": self.cfg.mode,
            "task": self.task_name,
            "stage": self.stage,
            "seed": self.seed,
            "episode_id": self.episode_id,
            "step": self.step,
            "sim_time_s": self.sim_time_ns * 1e-9,
            **self.stats.to_dict(),
        }
