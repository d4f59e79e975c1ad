"""What a task is: its scene objects, reset distribution, success predicate, instruction and time limit.

Tasks register by name (`register_task`); `pld_sim.make(name)` looks them up. A task never steps the
simulation: it adds bodies to the scene spec, places them on reset, and judges a state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np

from pld_sim.randomization import Variation
from pld_sim.registry import Registry


@dataclass(frozen=True)
class CameraPose:
    pos: tuple[float, float, float]
    xyaxes: tuple[float, float, float, float, float, float]
    fovy: float = 60.0

    @classmethod
    def look_at(
        cls, pos: tuple[float, float, float], target: tuple[float, float, float], fovy: float = 60.0
    ) -> CameraPose:
        """A camera at `pos` looking at `target` with the image's up direction towards world +z."""
        back = np.asarray(pos, dtype=float) - np.asarray(target, dtype=float)
        back /= np.linalg.norm(back)
        right = np.cross([0.0, 0.0, 1.0], back)
        right /= np.linalg.norm(right)
        up = np.cross(back, right)
        return cls(tuple(pos), tuple(np.round(np.concatenate([right, up]), 6).tolist()), fovy)


class Task(ABC):
    """Base of every task. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    robot: ClassVar[str]
    time_limit_s: ClassVar[float]
    side_camera: ClassVar[CameraPose]
    # Cameras beyond the side and wrist views, by name; `add_objects` adds them (the MuJoCo camera has the
    # same name), e.g. one mounted on a fixture where the two standard views cannot see the success.
    extra_cameras: ClassVar[tuple[str, ...]] = ()
    # robot arm joint positions at reset (None: the robot's home pose)
    start_qpos: ClassVar[tuple[float, ...] | None] = None
    # MuJoCo `option` fields this task's scene needs (e.g. friction cone), applied by the scene builder
    physics_options: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    @abstractmethod
    def add_objects(self, spec: mujoco.MjSpec, variation: Variation) -> None:
        """Add the task's bodies (with free joints where they move) to the scene spec."""

    @abstractmethod
    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """Place the objects for a new episode (data.qpos of the robot is already at its start pose)."""

    @abstractmethod
    def success_terms(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, float]:
        """The raw quantities the success predicate looks at (logged for diagnosis)."""

    @abstractmethod
    def success_from_terms(self, terms: dict[str, float]) -> bool:
        """The task's named pure success predicate applied to `success_terms`."""

    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        return self.success_from_terms(self.success_terms(model, data))

    @abstractmethod
    def privileged_state(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """Object state for evaluation, scripted experts and ablations (never a policy input by default)."""

    @abstractmethod
    def instruction(self) -> str:
        """The language instruction of the current episode."""

    def task_state(self) -> dict:
        """Discrete episode state beyond the physics (e.g. which cube is the target), for get/set_state."""
        return {}

    def set_task_state(self, state: dict) -> None:
        if state:
            raise ValueError(f"{self.name} has no task state, got {state}")


TASKS: Registry[type[Task]] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    return TASKS.add(cls.name, cls)


def make_task(name: str) -> Task:
    return TASKS.lookup(name)()


def free_body_pose(model: mujoco.MjModel, data: mujoco.MjData, body: str) -> tuple[np.ndarray, np.ndarray]:
    """Position and quaternion of a body with a free joint."""
    body_id = model.body(body).id
    return data.xpos[body_id].copy(), data.xquat[body_id].copy()


def set_free_body_pose(model: mujoco.MjModel, data: mujoco.MjData, body: str, pos, quat=(1, 0, 0, 0)) -> None:
    joint = model.body(body).jntadr[0]
    adr, dof = model.jnt_qposadr[joint], model.jnt_dofadr[joint]
    data.qpos[adr : adr + 3] = pos
    data.qpos[adr + 3 : adr + 7] = quat
    data.qvel[dof : dof + 6] = 0.0


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
