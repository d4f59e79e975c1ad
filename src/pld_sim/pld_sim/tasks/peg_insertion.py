"""`peg_insertion`: the Franka picks up a standing square peg and inserts it into a hole in a fixture.

The fixture is a block with a square through-hole (the table is the hole's floor), built from box
geoms. It is a mocap body: immovable, and its randomised pose is part of the physics state that
`env.get_state()` saves, so no extra task state is needed. The hole is 3 mm wider than the peg on each
side, and a 45-degree chamfer around the opening guides a peg that arrives a few mm off centre.
"""

from __future__ import annotations

import mujoco
import numpy as np

from pld_sim import predicates
from pld_sim.randomization import Variation
from pld_sim.tasks.base import CameraPose, Task, free_body_pose, register_task, set_free_body_pose, yaw_quat

PEG_HALF_WIDTH = 0.01  # a 2 cm square peg
PEG_HALF_LENGTH = 0.035  # 7 cm long: held 2.5 cm below its top, 3.5 cm stay below the fingertips
HOLE_CLEARANCE = 0.003  # per side, not scaled with the object size
CHAMFER = 0.006  # 45-degree chamfer around the opening: a peg up to 9 mm off centre slides in
FIXTURE_HALF_WIDTH = 0.045  # outer half extent of the square block
FIXTURE_HEIGHT = 0.05  # the hole is this deep
PEG_MASS = 0.05
GRIP_LENGTH = 0.035  # the top of the peg is a rubber-like sleeve where the fingers hold it
# With the simulated hand's weak grasp (see add_objects) a peg that is only as grippy as the cube slides out
# of the fingers when the hand is jostled; the sleeve's high friction stands in for a rubber grip.
GRIP_FRICTION = 3.0
SHAFT_FRICTION = 1.0
ORANGE = (0.95, 0.5, 0.1, 1.0)
DARK = (0.15, 0.15, 0.17, 1.0)
GREY = (0.45, 0.47, 0.5, 1.0)
# Reset distribution (robot base frame): the peg stands upright with a random yaw; the fixture turns
# less than a quarter turn, which with the square symmetry covers every relative yaw.
PEG_X_RANGE = (0.40, 0.62)
PEG_Y_RANGE = (-0.2, 0.2)
FIXTURE_X_RANGE = (0.42, 0.62)
FIXTURE_Y_RANGE = (-0.2, 0.2)
YAW_RANGE = (-np.pi / 4, np.pi / 4)
# Peg-to-fixture centre distance: an open finger (6.6 cm from the peg axis) stays clear of the block's
# corner (half diagonal), with a margin.
MIN_SEPARATION = 0.066 + np.sqrt(2.0) * FIXTURE_HALF_WIDTH + 0.03
# A camera mounted on the fixture (it turns with it), level with the hole's opening and looking across it:
# it sees how much of the orange shaft still stands above the block. From the side and wrist views, 10 mm
# and 20 mm of insertion cannot be told apart (the wrist view is hidden by the hand; in the side view 1 cm
# is under a pixel at 64 px), so without it no image classifier can judge this task (pld_reward README).
FIXTURE_CAMERA = "fixture"
FIXTURE_CAMERA_POSE = CameraPose.look_at(pos=(0.0, -0.11, 0.07), target=(0.0, 0.0, 0.06), fovy=40)
MAX_PLACEMENT_TRIES = 1000


def peg_bottom_in_fixture(
    peg_pos: np.ndarray,
    peg_mat: np.ndarray,
    half_length: float,
    hole_top: np.ndarray,
    fixture_mat: np.ndarray,
) -> np.ndarray:
    """Centre of the peg's bottom face in the fixture frame, origin at the hole's top centre (z up)."""
    bottom = peg_pos - peg_mat[:, 2] * half_length
    return fixture_mat.T @ (bottom - hole_top)


def fixture_boxes(
    inner: float, outer: float, height: float, chamfer: float
) -> list[tuple[str, list[float], list[float], list[float]]]:
    """Box geoms (name, half sizes, centre, quat) of a block with a square through-hole and a 45-degree
    chamfer of depth `chamfer` around the opening, in the block's frame (origin: hole centre at the bottom).

    Per side of the hole: a full-height slab from `inner + chamfer` outwards, a lower slab up to the
    chamfer's foot between `inner` and `inner + chamfer`, and a box turned 45 degrees about the edge
    whose upper face is the chamfer (the rest of that box lies inside the two slabs).
    """
    c = chamfer
    mid = (outer + inner + c) / 2  # centre of a full-height slab, measured outwards from the hole axis
    slab = (outer - inner - c) / 2
    half_height, low_half = height / 2, (height - c) / 2
    diamond = c / np.sqrt(2.0)  # half size of the turned box: its corners lie c from its centre
    boxes = []
    for sign in (-1.0, 1.0):
        turn = [np.cos(np.pi / 8), sign * np.sin(np.pi / 8), 0.0, 0.0]  # 45 degrees about x
        boxes += [  # sides at y = -+ inner: full width along x
            ("slab", [outer, slab, half_height], [0.0, sign * mid, half_height], [1.0, 0.0, 0.0, 0.0]),
            (
                "lower",
                [inner + c, c / 2, low_half],
                [0.0, sign * (inner + c / 2), low_half],
                [1.0, 0.0, 0.0, 0.0],
            ),
            ("chamfer", [inner + c, diamond, diamond], [0.0, sign * (inner + c), height - c], turn),
        ]
        turn = [np.cos(np.pi / 8), 0.0, sign * np.sin(np.pi / 8), 0.0]  # 45 degrees about y
        boxes += [  # sides at x = -+ inner: between the two full-width slabs
            ("slab", [slab, inner + c, half_height], [sign * mid, 0.0, half_height], [1.0, 0.0, 0.0, 0.0]),
            (
                "lower",
                [c / 2, inner + c, low_half],
                [sign * (inner + c / 2), 0.0, low_half],
                [1.0, 0.0, 0.0, 0.0],
            ),
            ("chamfer", [diamond, inner + c, diamond], [sign * (inner + c), 0.0, height - c], turn),
        ]
    return [
        (name, [float(v) for v in size], [float(v) for v in pos], [float(v) for v in quat])
        for name, size, pos, quat in boxes
    ]


@register_task
class PegInsertion(Task):
    name = "peg_insertion"
    robot = "fr3"
    time_limit_s = 15.0
    # front-right, looking at (0.45, 0, 0.15): the whole arm, the hand and both objects
    side_camera = CameraPose(pos=(0.9, -0.5, 0.55), xyaxes=(0.743, 0.669, 0.0, -0.317, 0.352, 0.88), fovy=60)
    instructions = ("insert the peg into the hole",)
    extra_cameras = (FIXTURE_CAMERA,)

    def __init__(self) -> None:
        super().__init__()
        self._set_sizes(1.0)

    def _set_sizes(self, scale: float) -> None:
        self.peg_half_width = PEG_HALF_WIDTH * scale
        self.peg_half_length = PEG_HALF_LENGTH * scale
        self.hole_half_width = self.peg_half_width + HOLE_CLEARANCE
        self.fixture_half_width = FIXTURE_HALF_WIDTH * scale
        self.fixture_height = FIXTURE_HEIGHT * scale
        self.chamfer = CHAMFER

    def add_objects(self, spec: mujoco.MjSpec, variation: Variation) -> None:
        self._set_sizes(variation.object_size_scale)
        peg = spec.worldbody.add_body(name="peg", pos=[0.5, 0.0, self.peg_half_length])
        peg.add_freejoint(name="peg_joint")
        # Two boxes of the same cross-section: a grippy sleeve on the upper part (where the fingers hold the
        # peg) and a smooth shaft below it (what goes into the hole).
        grip_half = GRIP_LENGTH * variation.object_size_scale / 2
        shaft_half = self.peg_half_length - grip_half
        parts = {  # name: (half length, centre along the peg axis, friction, colour)
            "peg_grip": (grip_half, self.peg_half_length - grip_half, GRIP_FRICTION, DARK),
            "peg": (shaft_half, -self.peg_half_length + shaft_half, SHAFT_FRICTION, ORANGE),
        }
        for name, (half, centre, friction, rgba) in parts.items():
            peg.add_geom(
                name=name,
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[self.peg_half_width, self.peg_half_width, half],
                pos=[0.0, 0.0, centre],
                mass=PEG_MASS * half / self.peg_half_length,
                rgba=variation.color(rgba, variation.object_color_offset),
                friction=[friction, 0.01, 0.0001],
                condim=4,
                # Stiffer contacts than the defaults, and they win over the other geom's (priority): the FR3
                # hand's position servo squeezes a 2 cm peg with only ~5 N, and under the default soft
                # contacts a held peg creeps down and tilts in the grasp (~5 mm and 5 degrees in 3 s).
                priority=1,
                solref=[0.01, 1.0],
                solimp=[0.95, 0.99, 0.001, 0.5, 2.0],
            )
        # body origin: the hole's centre on the table
        fixture = spec.worldbody.add_body(name="fixture", pos=[0.5, 0.2, 0.0], mocap=True)
        grey = variation.color(GREY, variation.object_color_offset)
        for index, (name, size, pos, quat) in enumerate(
            fixture_boxes(self.hole_half_width, self.fixture_half_width, self.fixture_height, self.chamfer)
        ):
            fixture.add_geom(
                name=f"fixture_{name}_{index}",
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=size,
                pos=pos,
                quat=quat,
                rgba=grey,
            )
        camera = FIXTURE_CAMERA_POSE
        fixture.add_camera(
            name=FIXTURE_CAMERA, pos=list(camera.pos), xyaxes=list(camera.xyaxes), fovy=camera.fovy
        )

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        for _ in range(MAX_PLACEMENT_TRIES):
            peg_xy = np.array([rng.uniform(*PEG_X_RANGE), rng.uniform(*PEG_Y_RANGE)])
            fixture_xy = np.array([rng.uniform(*FIXTURE_X_RANGE), rng.uniform(*FIXTURE_Y_RANGE)])
            if np.linalg.norm(peg_xy - fixture_xy) >= MIN_SEPARATION:
                break
        else:
            raise RuntimeError("could not place the peg and the fixture apart")
        set_free_body_pose(
            model, data, "peg", [*peg_xy, self.peg_half_length], yaw_quat(rng.uniform(*YAW_RANGE))
        )
        mocap = model.body("fixture").mocapid[0]
        data.mocap_pos[mocap] = [*fixture_xy, 0.0]
        data.mocap_quat[mocap] = yaw_quat(rng.uniform(*YAW_RANGE))

    def _fixture_pose(self, model: mujoco.MjModel, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """Centre of the hole's top opening and the fixture's orientation (from the mocap state, which is
        current even before the next forward pass)."""
        mocap = model.body("fixture").mocapid[0]
        quat = data.mocap_quat[mocap].copy()
        mat = np.empty(9)
        mujoco.mju_quat2Mat(mat, quat)
        top = data.mocap_pos[mocap] + mat.reshape(3, 3)[:, 2] * self.fixture_height
        return top, quat

    def success_terms(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, float]:
        peg = model.body("peg").id
        top, quat = self._fixture_pose(model, data)
        mat = np.empty(9)
        mujoco.mju_quat2Mat(mat, quat)
        local = peg_bottom_in_fixture(
            data.xpos[peg], data.xmat[peg].reshape(3, 3), self.peg_half_length, top, mat.reshape(3, 3)
        )
        return {
            "peg_bottom_depth": float(-local[2]),
            "peg_lateral_offset": float(np.max(np.abs(local[:2]))),
            "hole_half_width": float(self.hole_half_width),
        }

    def success_from_terms(self, terms: dict[str, float]) -> bool:
        return predicates.peg_inserted(
            terms["peg_bottom_depth"], terms["peg_lateral_offset"], terms["hole_half_width"]
        )

    def privileged_state(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """Peg pos(3), quat(4); hole top centre(3), fixture quat(4); peg half width, peg half length,
        hole half width."""
        pos, quat = free_body_pose(model, data, "peg")
        top, fixture_quat = self._fixture_pose(model, data)
        sizes = [self.peg_half_width, self.peg_half_length, self.hole_half_width]
        return np.concatenate([pos, quat, top, fixture_quat, sizes])

    def instruction(self) -> str:
        return self.instructions[0]
