"""`pick_cube`: the Franka picks up a blue cube placed at a random pose on the table."""

from __future__ import annotations

import mujoco
import numpy as np

from pld_sim import predicates
from pld_sim.randomization import Variation
from pld_sim.scene import ROBOT_PREFIX
from pld_sim.tasks.base import CameraPose, Task, free_body_pose, register_task, set_free_body_pose, yaw_quat

CUBE_HALF_SIZE = 0.025
BLUE = (0.1, 0.25, 0.9, 1.0)
# Reset distribution of the cube centre on the table (robot base frame) and its yaw.
CUBE_X_RANGE = (0.42, 0.62)
CUBE_Y_RANGE = (-0.15, 0.15)
CUBE_YAW_RANGE = (-np.pi / 4, np.pi / 4)
FINGER_BODIES = ("left_finger", "right_finger")


def contact_partners(model: mujoco.MjModel, data: mujoco.MjData, body: int) -> set[int]:
    """Ids of the bodies that `body` is in contact with now."""
    if data.ncon == 0:
        return set()
    pairs = model.geom_bodyid[data.contact.geom[: data.ncon]]
    return set(pairs[pairs[:, 0] == body, 1].tolist()) | set(pairs[pairs[:, 1] == body, 0].tolist())


def add_cube(spec: mujoco.MjSpec, name: str, rgba, half_size: float, variation: Variation) -> None:
    body = spec.worldbody.add_body(name=name, pos=[0.5, 0, half_size])
    body.add_freejoint(name=f"{name}_joint")
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[half_size] * 3,
        mass=0.05,
        rgba=variation.color(rgba, variation.object_color_offset),
        friction=[1.5, 0.01, 0.0001],
        condim=4,
    )


@register_task
class PickCube(Task):
    name = "pick_cube"
    robot = "fr3"
    time_limit_s = 10.0
    side_camera = CameraPose.look_at(pos=(1.2, -0.6, 0.7), target=(0.4, 0.0, 0.12), fovy=55)
    instructions = ("pick up the blue cube",)

    def add_objects(self, spec: mujoco.MjSpec, variation: Variation) -> None:
        self.cube_half_size = CUBE_HALF_SIZE * variation.object_size_scale
        add_cube(spec, "cube", BLUE, self.cube_half_size, variation)

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        pos = [rng.uniform(*CUBE_X_RANGE), rng.uniform(*CUBE_Y_RANGE), self.cube_half_size]
        set_free_body_pose(model, data, "cube", pos, yaw_quat(rng.uniform(*CUBE_YAW_RANGE)))

    def success_terms(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, float]:
        cube = model.body("cube").id
        left, right = (model.body(ROBOT_PREFIX + f).id for f in FINGER_BODIES)
        partners = contact_partners(model, data, cube)
        return {
            "cube_bottom_z": float(data.xpos[cube][2] - self.cube_half_size),
            "touching_left_finger": float(left in partners),
            "touching_right_finger": float(right in partners),
        }

    def success_from_terms(self, terms: dict[str, float]) -> bool:
        return predicates.cube_lifted_and_held(
            terms["cube_bottom_z"],
            0.0,
            bool(terms["touching_left_finger"]),
            bool(terms["touching_right_finger"]),
        )

    def privileged_state(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        pos, quat = free_body_pose(model, data, "cube")
        return np.concatenate([pos, quat, [self.cube_half_size]])

    def instruction(self) -> str:
        return self.instructions[0]
