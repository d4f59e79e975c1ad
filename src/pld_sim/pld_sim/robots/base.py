"""The robot registry: what the scene builder, IK and observation need to know about an arm."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from pld_sim.registry import Registry


@dataclass(frozen=True)
class RobotSpec:
    """What the scene builder, IK and observation need to know about one arm.

    Names are those inside the robot's own spec; the scene builder attaches the robot with the
    prefix `robot/`, so in the compiled model they read `robot/<name>`.
    """

    name: str
    load: Callable[[], mujoco.MjSpec]
    arm_joints: tuple[str, ...]
    arm_actuators: tuple[str, ...]
    gripper_actuator: str
    gripper_ctrl_open: float
    gripper_ctrl_closed: float
    gripper_joints: tuple[str, ...]
    # finger opening (m) = sum of gripper joint positions times this factor
    gripper_width_per_joint: float
    tcp_site: str
    wrist_camera_body: str
    wrist_camera_pos: tuple[float, float, float]
    wrist_camera_xyaxes: tuple[float, float, float, float, float, float]
    home_qpos: tuple[float, ...]
    source: str
    license: str

    def __post_init__(self) -> None:
        if len(self.arm_joints) != len(self.arm_actuators) or len(self.home_qpos) != len(self.arm_joints):
            raise ValueError(f"{self.name}: arm joints, actuators and home pose must have the same length")

    def gripper_ctrl(self, command: float) -> float:
        """Map a gripper command in [-1 (open), 1 (closed)] to the actuator's control value."""
        closed = (float(np.clip(command, -1.0, 1.0)) + 1.0) / 2.0
        return self.gripper_ctrl_open + closed * (self.gripper_ctrl_closed - self.gripper_ctrl_open)


ROBOTS: Registry[RobotSpec] = Registry("robot")


def register_robot(spec: RobotSpec) -> RobotSpec:
    return ROBOTS.add(spec.name, spec)


def get_robot(name: str) -> RobotSpec:
    return ROBOTS.lookup(name)
