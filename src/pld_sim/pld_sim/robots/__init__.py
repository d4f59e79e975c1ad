"""Robot models for the simulator: a registry of real arm models shipped inside PyPI packages.

Each entry loads an `MjSpec` of the arm with its gripper and position actuators, and names what the
controller and the observation need (arm joints, TCP site, gripper actuator, wrist-camera mount).
Model sources and licences are listed in the package README. Importing this package registers them.
"""

from pld_sim.robots import (
    fr3,  # noqa: F401  (registers)
    yam,  # noqa: F401  (registers)
)
from pld_sim.robots.base import ROBOTS, RobotSpec, get_robot, register_robot

__all__ = ["ROBOTS", "RobotSpec", "get_robot", "register_robot"]
