"""`pick_cube_cluttered`: pick the blue or the red cube (named in the instruction) among distractors.

The PLD paper's generalisation test (Table 6): the target colour is drawn per episode, and 2-3 cubes of
other colours (possibly the other target colour) stand around it. The model holds one cube of every
colour; a cube not used in an episode is parked on a hidden shelf under the table, so the compiled
model never changes between episodes and the physics state alone says which cubes are on the table.
Only the target colour is extra episode state (`task_state`).
"""

from __future__ import annotations

import mujoco
import numpy as np

from pld_sim import predicates
from pld_sim.randomization import Variation
from pld_sim.scene import ROBOT_PREFIX
from pld_sim.tasks.base import CameraPose, Task, free_body_pose, register_task, set_free_body_pose, yaw_quat
from pld_sim.tasks.pick_cube import CUBE_HALF_SIZE, FINGER_BODIES, add_cube, contact_partners

# One cube per colour; the first two can be the target.
COLORS: dict[str, tuple[float, float, float, float]] = {
    "blue": (0.1, 0.25, 0.9, 1.0),
    "red": (0.9, 0.12, 0.1, 1.0),
    "green": (0.15, 0.7, 0.2, 1.0),
    "yellow": (0.95, 0.85, 0.1, 1.0),
    "white": (0.92, 0.92, 0.92, 1.0),
}
TARGET_COLORS = ("blue", "red")
DISTRACTOR_COUNTS = (2, 3)
# Reset region of the cube centres (robot base frame) and their yaw.
CLUTTER_X_RANGE = (0.38, 0.64)
CLUTTER_Y_RANGE = (-0.2, 0.2)
CUBE_YAW_RANGE = (-np.pi / 4, np.pi / 4)
# Outer face of an open Franka finger from the TCP axis (collision mesh), plus a safety margin: a
# distractor this far (plus its own half diagonal) from the target cannot touch an open finger.
OPEN_FINGER_REACH_M = 0.066
GRASP_MARGIN_M = 0.015
# Distractors only need not to overlap each other.
DISTRACTOR_GAP_M = 0.02
# Hidden shelf under the table top (which hides it from every camera) where unused cubes wait.
SHELF_Z = -0.3
SHELF_HALF_SIZE = (0.35, 0.08, 0.01)
SHELF_CENTER = (0.45, 0.0)
PARKED_BELOW_Z = -0.1  # a cube centre below this is parked, not on the table
MAX_PLACEMENT_TRIES = 1000
PRIVILEGED_SLOT = 4  # x, y, z, on_table per non-target cube


def cube_body(color: str) -> str:
    return f"cube_{color}"


def target_clearance(half_size: float) -> float:
    """Least centre distance of a distractor from the target so an open gripper fits between them."""
    return OPEN_FINGER_REACH_M + np.sqrt(2.0) * half_size + GRASP_MARGIN_M


def sample_layout(rng: np.random.Generator, count: int, half_size: float) -> np.ndarray:
    """`count` cube centres (xy), the first the target, spaced as `target_clearance` and non-overlapping.

    Rejection sampling, one cube at a time; a stuck draw restarts the whole layout. The region is far
    larger than needed for four cubes, so this succeeds within a few restarts.
    """
    near_target = target_clearance(half_size)
    apart = 2.0 * np.sqrt(2.0) * half_size + DISTRACTOR_GAP_M
    for _ in range(MAX_PLACEMENT_TRIES):
        points: list[np.ndarray] = []
        for _ in range(MAX_PLACEMENT_TRIES):
            candidate = np.array([rng.uniform(*CLUTTER_X_RANGE), rng.uniform(*CLUTTER_Y_RANGE)])
            distances = [np.linalg.norm(candidate - p) for p in points]
            if points and distances[0] < near_target:
                continue
            if any(d < apart for d in distances[1:]):
                continue
            points.append(candidate)
            if len(points) == count:
                return np.array(points)
        # too crowded: start again
    raise RuntimeError(f"could not place {count} cubes of half size {half_size:.3f} m without overlap")


@register_task
class PickCubeCluttered(Task):
    name = "pick_cube_cluttered"
    robot = "fr3"
    time_limit_s = 10.0
    # front-right, looking at (0.42, 0, 0.2): the whole arm, the hand above the table and the clutter region
    side_camera = CameraPose(pos=(0.9, -0.5, 0.6), xyaxes=(0.721, 0.693, 0.0, -0.346, 0.361, 0.866), fovy=60)

    def __init__(self) -> None:
        super().__init__()
        self.target = TARGET_COLORS[0]
        self.cube_half_size = CUBE_HALF_SIZE

    @property
    def distractor_colors(self) -> tuple[str, ...]:
        """The non-target colours in a fixed order: the layout of the privileged distractor slots."""
        return tuple(c for c in COLORS if c != self.target)

    def add_objects(self, spec: mujoco.MjSpec, variation: Variation) -> None:
        self.cube_half_size = CUBE_HALF_SIZE * variation.object_size_scale
        shelf_size = list(SHELF_HALF_SIZE)
        spec.worldbody.add_geom(
            name="parking_shelf",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=shelf_size,
            pos=[*SHELF_CENTER, SHELF_Z - shelf_size[2]],
            rgba=[0.3, 0.3, 0.3, 1.0],
            group=5,  # never rendered
        )
        for color, rgba in COLORS.items():
            add_cube(spec, cube_body(color), rgba, self.cube_half_size, variation)

    def _park(self, model: mujoco.MjModel, data: mujoco.MjData, color: str, index: int) -> None:
        x = SHELF_CENTER[0] - SHELF_HALF_SIZE[0] + 0.06 + 0.12 * index
        set_free_body_pose(model, data, cube_body(color), [x, SHELF_CENTER[1], SHELF_Z + self.cube_half_size])

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        self.target = TARGET_COLORS[int(rng.integers(len(TARGET_COLORS)))]
        others = self.distractor_colors
        count = int(rng.choice(DISTRACTOR_COUNTS))
        chosen = [others[i] for i in sorted(rng.choice(len(others), size=count, replace=False))]
        layout = sample_layout(rng, 1 + count, self.cube_half_size)
        for color, xy in zip([self.target, *chosen], layout, strict=True):
            yaw = rng.uniform(*CUBE_YAW_RANGE)
            set_free_body_pose(model, data, cube_body(color), [*xy, self.cube_half_size], yaw_quat(yaw))
        for index, color in enumerate(c for c in others if c not in chosen):
            self._park(model, data, color, index)

    def success_terms(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, float]:
        cube = model.body(cube_body(self.target)).id
        left, right = (model.body(ROBOT_PREFIX + f).id for f in FINGER_BODIES)
        partners = contact_partners(model, data, cube)
        lifted_distractors = sum(
            data.xpos[model.body(cube_body(c)).id][2] - self.cube_half_size > predicates.LIFT_HEIGHT_M
            for c in self.distractor_colors
        )
        return {
            "cube_bottom_z": float(data.xpos[cube][2] - self.cube_half_size),
            "touching_left_finger": float(left in partners),
            "touching_right_finger": float(right in partners),
            "distractors_lifted": float(lifted_distractors),  # logged only: not part of success
        }

    def success_from_terms(self, terms: dict[str, float]) -> bool:
        return predicates.cube_lifted_and_held(
            terms["cube_bottom_z"],
            0.0,
            bool(terms["touching_left_finger"]),
            bool(terms["touching_right_finger"]),
        )

    def privileged_state(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """Target pos(3), quat(4), half size(1); then per non-target colour x, y, z, on_table (zeros if
        parked), in the fixed order of `distractor_colors`."""
        pos, quat = free_body_pose(model, data, cube_body(self.target))
        slots = []
        for color in self.distractor_colors:
            other, _ = free_body_pose(model, data, cube_body(color))
            on_table = other[2] > PARKED_BELOW_Z
            slots.append(np.concatenate([other, [1.0]]) if on_table else np.zeros(PRIVILEGED_SLOT))
        return np.concatenate([pos, quat, [self.cube_half_size], *slots])

    def instruction(self) -> str:
        return f"pick up the {self.target} cube"

    def task_state(self) -> dict:
        return {"target": self.target}

    def set_task_state(self, state: dict) -> None:
        if set(state) != {"target"} or state["target"] not in TARGET_COLORS:
            raise ValueError(
                f"{self.name} task state must be {{'target': one of {TARGET_COLORS}}}, got {state}"
            )
        self.target = state["target"]
