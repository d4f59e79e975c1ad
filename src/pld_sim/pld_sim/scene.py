"""Builds the MuJoCo model of a task: table, light, robot with its wrist camera, side camera, objects.

Rendering is set up for speed on CPU (no shadows, no multisampling), as measured in design.md §6.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mujoco
import numpy as np

from pld_sim.randomization import Variation
from pld_sim.robots import RobotSpec

if TYPE_CHECKING:  # tasks import the scene's names; the scene only needs the Task type
    from pld_sim.tasks.base import Task

ROBOT_PREFIX = "robot/"
SIDE_CAMERA = "side"
WRIST_CAMERA = ROBOT_PREFIX + "wrist"
CAMERAS = {"side": SIDE_CAMERA, "wrist": WRIST_CAMERA}  # every task has these two
TABLE_SIZE = (0.45, 0.6, 0.02)  # half extents; the table top is at z = 0, the robot base at the origin
TABLE_CENTER_X = 0.45
TABLE_RGBA = (0.55, 0.45, 0.35, 1.0)
LIGHT_DIRECTION = (0.3, 0.3, -1.0)
LIGHT_DIFFUSE = 0.7


def _rotate_xyaxes(xyaxes: tuple[float, ...], rotvec: tuple[float, float, float]) -> list[float]:
    if not np.any(rotvec):
        return list(xyaxes)
    mat = np.empty(9)
    quat = np.empty(4)
    angle = float(np.linalg.norm(rotvec))
    mujoco.mju_axisAngle2Quat(quat, np.asarray(rotvec) / angle, angle)
    mujoco.mju_quat2Mat(mat, quat)
    rot = mat.reshape(3, 3)
    return [*(rot @ np.asarray(xyaxes[:3])), *(rot @ np.asarray(xyaxes[3:]))]


def task_cameras(task: Task) -> dict[str, str]:
    """Camera name in observations -> MuJoCo camera name: the standard two, then the task's own."""
    return {**CAMERAS, **{name: name for name in task.extra_cameras}}


def build_scene(
    task: Task, robot: RobotSpec, variation: Variation, physics_dt: float, image_size: int
) -> mujoco.MjModel:
    spec = mujoco.MjSpec()
    spec.modelname = task.name
    spec.option.timestep = physics_dt
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0
    spec.visual.global_.offwidth = max(image_size, 64)
    spec.visual.global_.offheight = max(image_size, 64)
    world = spec.worldbody

    direction = np.array(LIGHT_DIRECTION)
    direction[:2] += variation.light_direction_offset
    diffuse = LIGHT_DIFFUSE * variation.light_intensity_scale
    world.add_light(
        pos=[0.4, 0.0, 1.5],
        dir=direction.tolist(),
        diffuse=[diffuse] * 3,
        ambient=[0.3] * 3,
        castshadow=False,
    )
    world.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[2, 2, 0.05],
        pos=[0, 0, -0.75],
        rgba=[0.3, 0.3, 0.32, 1],
        contype=0,
        conaffinity=0,
    )
    world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=list(TABLE_SIZE),
        pos=[TABLE_CENTER_X, 0, -TABLE_SIZE[2]],
        rgba=variation.color(TABLE_RGBA, variation.table_color_offset),
        friction=[1.0, 0.005, 0.0001],
    )

    camera = task.side_camera
    world.add_camera(
        name=SIDE_CAMERA,
        pos=(np.asarray(camera.pos) + variation.camera_position_offset).tolist(),
        xyaxes=_rotate_xyaxes(camera.xyaxes, variation.camera_rotation),
        fovy=camera.fovy,
    )

    robot_spec = robot.load()
    robot_spec.body(robot.wrist_camera_body).add_camera(
        name="wrist", pos=list(robot.wrist_camera_pos), xyaxes=list(robot.wrist_camera_xyaxes), fovy=75
    )
    robot_spec.option.integrator = spec.option.integrator
    robot_spec.option.timestep = physics_dt
    spec.attach(robot_spec, frame=world.add_frame(pos=[0, 0, 0]), prefix=ROBOT_PREFIX)

    task.add_objects(spec, variation)
    for name, value in task.physics_options.items():
        setattr(spec.option, name, value)
    return spec.compile()
