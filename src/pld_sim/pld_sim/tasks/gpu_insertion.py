"""`gpu_insertion_stage1..4`: the YAM arm moves a GPU card between PCIe-like slots of a motherboard.

The four stages of the PLD paper's hour-long loop, each resettable on its own:

1. pick the card from the table and insert it into slot 1,
2. move it from slot 1 to slot 3 (success: partially inserted in slot 3),
3. press it firmly into slot 3 (success: fully seated),
4. unplug it and put it back on the table.

Scene (box and capsule geoms only, cheap to collide): a motherboard (a mocap body, so its pose can be
randomised per reset without recompiling) with slot 1 and slot 3 housings (two walls and a funnel lip
each, a channel 2 mm wider than the card edge) and a decorative slot 2. Each real slot holds a pair of
spring-loaded retention clips (capsules on slide joints), like the contacts of a real PCIe
connector: they stop a lowered card about 16 mm deep ("partially inserted") until it is pushed past
them, and then hold it by friction ("seated"); this makes stage 3 a real task rather than something
gravity does. The card is a PCB with a cooler, a handle on top for the gripper and an end plate at
each end; the end plates reach down to the card edge, so the card stands upright on the table and
rests on the board when seated (they sit beyond the slot housing's ends).

Frames: the card frame is at the middle of the PCB's bottom edge (x along the card, z up); a slot
frame is at the middle of its channel on the board surface (x along the channel, z up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np

from pld_sim import predicates
from pld_sim.randomization import Variation
from pld_sim.scene import ROBOT_PREFIX
from pld_sim.tasks.base import CameraPose, Task, free_body_pose, register_task, set_free_body_pose, yaw_quat
from pld_sim.tasks.pick_cube import contact_partners

# ---------------------------------------------------------------- geometry (metres, half sizes)
BOARD_HALF = (0.10, 0.085, 0.003)  # the board top is the board body's origin (z = 0.006 on the table)
BOARD_THICKNESS = 2 * BOARD_HALF[2]
SLOT_OFFSETS = {1: -0.03, 2: 0.0, 3: 0.03}  # slot centres along the board's y axis
REAL_SLOTS = (1, 3)
SLOT_HALF_LENGTH = 0.062
CHANNEL_HALF_WIDTH = 0.004  # the card edge is 6 mm thick: 1 mm clearance on each side
WALL_HALF_THICKNESS = 0.003
WALL_HEIGHT = 0.025  # deep enough that a partially inserted card leans at most ~7 degrees
LIP_RISE = (0.005, 0.006)  # funnel lip on each wall: 5 mm outwards over 6 mm up
LIP_HALF_THICKNESS = 0.0015
HOUSING_TOP = WALL_HEIGHT + LIP_RISE[1]
# Clips: capsules along the channel with their axis 1 mm inside the wall, protruding 3 mm into the
# channel (2 mm into the card's path). A lowered card edge lands on them 30 degrees off their top, a
# ramp steep enough to push them back under a firm press (friction 0.4 < tan 30 deg: no self-locking)
# but far too flat for the card's weight alone, so the card rests there, partially inserted.
CLIP_RADIUS = 0.004
CLIP_AXIS_OFFSET = 0.005  # from the channel's middle
CLIP_HEIGHT = 0.005
CLIP_HALF_LENGTH = 0.05
CLIP_TRAVEL = 0.003
CLIP_STIFFNESS = 1500.0  # N/m; preloaded by CLIP_PRELOAD_M against the joint limit
CLIP_PRELOAD_M = 0.002  # 3 N at rest, 6 N when pushed back by the card
CLIP_DAMPING = 20.0
CLIP_ARMATURE = 0.2  # keeps the stiff clip spring stable at a 5 ms step (omega * dt ~ 0.4)

PCB_HALF = (0.06, 0.003, 0.04)
COOLER_HALF = (0.064, 0.015, 0.0175)
COOLER_BOTTOM = 0.034  # above the housing top (0.031) when the card is seated
HANDLE_HALF = (0.03, 0.008, 0.013)
PLATE_HALF = (0.004, 0.02, 0.035)
PLATE_X = 0.074  # end plates beyond the housing's ends (0.062): 8 mm of slack along the slot
CARD_MASSES = {"pcb": 0.05, "cooler": 0.07, "handle": 0.01, "plate": 0.01}

GREEN_PCB = (0.1, 0.45, 0.2, 1.0)
BOARD_RGBA = (0.05, 0.3, 0.12, 1.0)
SLOT_RGBA = (0.08, 0.08, 0.08, 1.0)
CLIP_RGBA = (0.85, 0.7, 0.2, 1.0)
COOLER_RGBA = (0.15, 0.15, 0.17, 1.0)
HANDLE_RGBA = (0.9, 0.35, 0.05, 1.0)
PLATE_RGBA = (0.7, 0.7, 0.72, 1.0)

# Collision bits: table (1/1) and robot (2/1) are set by the scene and the robot. The board is a
# mocap body, so it must not collide with the table it sits on; the card collides with everything.
BOARD_CONTYPE, BOARD_CONAFFINITY = 4, 2 | 4
CARD_CONTYPE, CARD_CONAFFINITY = 1 | 4, 1 | 2 | 4
CARD_FRICTION = (1.0, 0.01, 0.0001)
IMPRATIO = 10.0
CLIP_FRICTION = (0.4, 0.005, 0.0001)

# ---------------------------------------------------------------- reset distributions
BOARD_CENTER = (0.34, 0.07)
BOARD_XY_RANGE = 0.02
BOARD_YAW_RANGE = 0.15
CARD_TABLE_CENTER = (0.30, -0.13)
CARD_XY_RANGE = 0.03
CARD_YAW_RANGE = 0.3
SEATED_CLIP_QPOS = PCB_HALF[1] - (CLIP_AXIS_OFFSET - CLIP_RADIUS)  # clips pushed back by the edge
# Height of the card edge above the board when it rests on the un-pushed clips ("partially inserted").
RESTING_EDGE_HEIGHT = CLIP_HEIGHT + float(np.sqrt(CLIP_RADIUS**2 - (CLIP_AXIS_OFFSET - PCB_HALF[1]) ** 2))
START_SETTLE_GAP = 0.0005  # objects start this far above their support and settle in the first step

CARD_BODY = "gpu"
BOARD_BODY = "motherboard"
FINGER_BODIES = ("tip_left", "tip_right")
PRIVILEGED_NAMES = tuple(
    [f"card_{k}" for k in ("x", "y", "z", "qw", "qx", "qy", "qz")]
    + [f"slot{s}_{k}" for s in REAL_SLOTS for k in ("x", "y", "z", "qw", "qx", "qy", "qz")]
)


def slot_site(slot: int) -> str:
    return f"slot{slot}"


def _add_slot(board: mujoco.MjsBody, slot: int) -> None:
    """Slot housing: two walls with funnel lips; a real slot also gets two spring-loaded clips."""
    y0 = SLOT_OFFSETS[slot]
    real = slot in REAL_SLOTS
    # slot 2 is scenery: it neither collides nor costs collision checks
    bits = (
        {"contype": BOARD_CONTYPE, "conaffinity": BOARD_CONAFFINITY}
        if real
        else {"contype": 0, "conaffinity": 0}
    )
    board.add_site(name=slot_site(slot), pos=[0, y0, 0], size=[0.004, 0.004, 0.004], group=4)
    lip_len = float(np.hypot(*LIP_RISE))
    lip_angle = float(np.arctan2(LIP_RISE[0], LIP_RISE[1]))
    for side in (-1.0, 1.0):
        board.add_geom(
            name=f"slot{slot}_wall_{'l' if side > 0 else 'r'}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[SLOT_HALF_LENGTH, WALL_HALF_THICKNESS, WALL_HEIGHT / 2],
            pos=[0, y0 + side * (CHANNEL_HALF_WIDTH + WALL_HALF_THICKNESS), WALL_HEIGHT / 2],
            rgba=list(SLOT_RGBA),
            **bits,
        )
        # lip: a thin box whose inner face runs from the wall's top inner edge outwards and up
        inner_mid = np.array([side * (CHANNEL_HALF_WIDTH + LIP_RISE[0] / 2), WALL_HEIGHT + LIP_RISE[1] / 2])
        normal = np.array([-side * LIP_RISE[1], LIP_RISE[0]]) / lip_len  # into the channel and up
        center = inner_mid - normal * LIP_HALF_THICKNESS
        board.add_geom(
            name=f"slot{slot}_lip_{'l' if side > 0 else 'r'}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[SLOT_HALF_LENGTH, LIP_HALF_THICKNESS, lip_len / 2],
            pos=[0, y0 + center[0], center[1]],
            quat=[np.cos(-side * lip_angle / 2), np.sin(-side * lip_angle / 2), 0, 0],
            rgba=list(SLOT_RGBA),
            **bits,
        )
        if not real:
            continue
        clip = board.add_body(
            name=f"slot{slot}_clip_{'l' if side > 0 else 'r'}",
            pos=[0, y0 + side * CLIP_AXIS_OFFSET, CLIP_HEIGHT],
        )
        clip.add_joint(
            name=f"slot{slot}_clip_{'l' if side > 0 else 'r'}",
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0, side, 0],  # positive = pushed back into the wall
            range=[0, CLIP_TRAVEL],
            stiffness=CLIP_STIFFNESS,
            springref=-CLIP_PRELOAD_M,
            damping=CLIP_DAMPING,
            armature=CLIP_ARMATURE,
        )
        clip.add_geom(
            type=mujoco.mjtGeom.mjGEOM_CAPSULE,  # capsule-box contacts are exact; cylinder rims are not
            size=[CLIP_RADIUS, CLIP_HALF_LENGTH, 0],
            quat=[np.sqrt(0.5), 0, np.sqrt(0.5), 0],  # axis along the slot
            mass=0.01,
            rgba=list(CLIP_RGBA),
            friction=list(CLIP_FRICTION),
            priority=1,  # contacts use the clip's friction, not the card's higher one (which self-locks)
            contype=BOARD_CONTYPE,
            conaffinity=BOARD_CONAFFINITY,
        )


def add_motherboard(spec: mujoco.MjSpec, variation: Variation) -> None:
    board = spec.worldbody.add_body(name=BOARD_BODY, pos=[*BOARD_CENTER, BOARD_THICKNESS], mocap=True)
    board.add_geom(
        name=BOARD_BODY,
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=list(BOARD_HALF),
        pos=[0, 0, -BOARD_HALF[2]],
        rgba=variation.color(BOARD_RGBA, variation.object_color_offset),
        contype=BOARD_CONTYPE,
        conaffinity=BOARD_CONAFFINITY,
    )
    for slot in SLOT_OFFSETS:
        _add_slot(board, slot)


@dataclass(frozen=True)
class CardGeometry:
    """Card dimensions after the variation's size scale (cooler and handle only: the edge must fit)."""

    cooler_half: tuple[float, float, float]
    handle_half: tuple[float, float, float]

    @property
    def handle_center_z(self) -> float:
        return COOLER_BOTTOM + 2 * self.cooler_half[2] + self.handle_half[2]

    @property
    def handle_top_z(self) -> float:
        return self.handle_center_z + self.handle_half[2]

    @classmethod
    def scaled(cls, scale: float) -> CardGeometry:
        cooler = (COOLER_HALF[0], COOLER_HALF[1] * scale, COOLER_HALF[2] * scale)
        handle = (HANDLE_HALF[0] * scale, HANDLE_HALF[1] * scale, HANDLE_HALF[2] * scale)
        return cls(cooler, handle)


def add_card(spec: mujoco.MjSpec, geometry: CardGeometry, variation: Variation) -> None:
    card = spec.worldbody.add_body(name=CARD_BODY, pos=[*CARD_TABLE_CENTER, 0.0])
    card.add_freejoint(name=f"{CARD_BODY}_joint")
    common = {
        "type": mujoco.mjtGeom.mjGEOM_BOX,
        "friction": list(CARD_FRICTION),
        "contype": CARD_CONTYPE,
        "conaffinity": CARD_CONAFFINITY,
    }
    card.add_geom(
        name="gpu_pcb",
        size=list(PCB_HALF),
        pos=[0, 0, PCB_HALF[2]],
        mass=CARD_MASSES["pcb"],
        rgba=variation.color(GREEN_PCB, variation.object_color_offset),
        **common,
    )
    card.add_geom(
        name="gpu_cooler",
        size=list(geometry.cooler_half),
        pos=[0, 0, COOLER_BOTTOM + geometry.cooler_half[2]],
        mass=CARD_MASSES["cooler"],
        rgba=variation.color(COOLER_RGBA, variation.object_color_offset),
        **common,
    )
    card.add_geom(
        name="gpu_handle",
        size=list(geometry.handle_half),
        pos=[0, 0, geometry.handle_center_z],
        mass=CARD_MASSES["handle"],
        rgba=variation.color(HANDLE_RGBA, variation.object_color_offset),
        **common,
    )
    for side in (-1.0, 1.0):
        card.add_geom(
            name=f"gpu_plate_{'front' if side > 0 else 'back'}",
            size=list(PLATE_HALF),
            pos=[side * PLATE_X, 0, PLATE_HALF[2]],
            mass=CARD_MASSES["plate"],
            rgba=variation.color(PLATE_RGBA, variation.object_color_offset),
            **common,
        )


def _box_corners(half: tuple[float, float, float], center: tuple[float, float, float]) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    return np.asarray(center) + signs * np.asarray(half)


def _quat_to_mat(quat: np.ndarray) -> np.ndarray:
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=np.float64))
    return mat.reshape(3, 3)


def card_in_slot_frame(
    card_pos: np.ndarray, card_quat: np.ndarray, slot_pos: np.ndarray, slot_quat: np.ndarray
) -> dict[str, float]:
    """Card edge position and tilt in a slot's frame: the quantities the insertion predicates read."""
    slot_rot = _quat_to_mat(slot_quat)
    local = slot_rot.T @ (np.asarray(card_pos) - np.asarray(slot_pos))
    card_up = _quat_to_mat(card_quat)[:, 2]
    card_along = _quat_to_mat(card_quat)[:, 0]
    tilt = float(np.arccos(np.clip(card_up @ slot_rot[:, 2], -1.0, 1.0)))
    # the card is symmetric end to end: its yaw relative to the slot is folded to [-pi/2, pi/2)
    along = slot_rot.T @ card_along
    yaw = float((np.arctan2(along[1], along[0]) + np.pi / 2) % np.pi - np.pi / 2)
    return {
        "depth": float(WALL_HEIGHT - local[2]),
        "axial_offset": float(local[0]),
        "lateral_offset": float(local[1]),
        "tilt": tilt,
        "yaw_error": yaw,
    }


class GpuInsertion(Task):
    """One stage of the GPU-insertion loop; subclasses set `stage`, `name` and the instruction."""

    robot = "yam"
    stage: ClassVar[int] = 1
    side_camera = CameraPose(pos=(0.9, -0.5, 0.55), xyaxes=(0.61, 0.793, 0, -0.381, 0.293, 0.877), fovy=50)
    instructions: ClassVar[dict[int, str]] = {
        1: "insert the GPU into slot 1",
        2: "move the GPU from slot 1 to slot 3",
        3: "press the GPU firmly into slot 3",
        4: "unplug the GPU and put it on the table",
    }
    time_limit_s = 20.0
    # The long, top-heavy card hangs from a 16 mm handle: with MuJoCo's default pyramidal friction
    # cones it creeps out of the grasp. Elliptic cones with a high impratio make friction stiff.
    physics_options: ClassVar[dict[str, Any]] = {"cone": mujoco.mjtCone.mjCONE_ELLIPTIC, "impratio": IMPRATIO}

    def __init__(self) -> None:
        super().__init__()
        self.geometry = CardGeometry.scaled(1.0)

    # ------------------------------------------------------------------ scene

    def add_objects(self, spec: mujoco.MjSpec, variation: Variation) -> None:
        self.geometry = CardGeometry.scaled(variation.object_size_scale)
        add_motherboard(spec, variation)
        add_card(spec, self.geometry, variation)

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        board_xy = np.asarray(BOARD_CENTER) + rng.uniform(-BOARD_XY_RANGE, BOARD_XY_RANGE, 2)
        board_yaw = rng.uniform(-BOARD_YAW_RANGE, BOARD_YAW_RANGE)
        mocap = model.body_mocapid[model.body(BOARD_BODY).id]
        data.mocap_pos[mocap] = [*board_xy, BOARD_THICKNESS]
        data.mocap_quat[mocap] = yaw_quat(board_yaw)
        card_xy = np.asarray(CARD_TABLE_CENTER) + rng.uniform(-CARD_XY_RANGE, CARD_XY_RANGE, 2)
        card_yaw = rng.uniform(-CARD_YAW_RANGE, CARD_YAW_RANGE)
        # small slack of the card inside its slot, as a person would leave it
        axial, yaw_slack = rng.uniform(-0.003, 0.003), rng.uniform(-0.02, 0.02)
        for slot in REAL_SLOTS:
            for side in ("l", "r"):
                data.qpos[model.jnt_qposadr[model.joint(f"slot{slot}_clip_{side}").id]] = 0.0
        if self.stage == 1:  # standing on the table
            set_free_body_pose(model, data, CARD_BODY, [*card_xy, START_SETTLE_GAP], yaw_quat(card_yaw))
            return
        slot = 1 if self.stage == 2 else 3
        seated = self.stage in (2, 4)
        offset = np.array([axial, 0.0, 0.0 if seated else RESTING_EDGE_HEIGHT + START_SETTLE_GAP])
        rot = _quat_to_mat(yaw_quat(board_yaw))
        slot_center = np.array([*board_xy, BOARD_THICKNESS]) + rot @ np.array([0.0, SLOT_OFFSETS[slot], 0.0])
        set_free_body_pose(
            model, data, CARD_BODY, slot_center + rot @ offset, yaw_quat(board_yaw + yaw_slack)
        )
        if seated:
            for side in ("l", "r"):
                data.qpos[model.jnt_qposadr[model.joint(f"slot{slot}_clip_{side}").id]] = SEATED_CLIP_QPOS

    # ------------------------------------------------------------------ state and success

    def slot_pose(
        self, model: mujoco.MjModel, data: mujoco.MjData, slot: int
    ) -> tuple[np.ndarray, np.ndarray]:
        site = model.site(slot_site(slot)).id
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[site])
        return data.site_xpos[site].copy(), quat

    def privileged_state(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        card_pos, card_quat = free_body_pose(model, data, CARD_BODY)
        parts = [card_pos, card_quat]
        for slot in REAL_SLOTS:
            parts.extend(self.slot_pose(model, data, slot))
        return np.concatenate(parts)

    def _card_bottom_z(self, data: mujoco.MjData, card: int) -> float:
        """Lowest point of the card's PCB and end plates (what rests on the table)."""
        corners = np.concatenate(
            [
                _box_corners(PCB_HALF, (0, 0, PCB_HALF[2])),
                _box_corners(PLATE_HALF, (PLATE_X, 0, PLATE_HALF[2])),
                _box_corners(PLATE_HALF, (-PLATE_X, 0, PLATE_HALF[2])),
            ]
        )
        world = corners @ data.xmat[card].reshape(3, 3).T + data.xpos[card]
        return float(world[:, 2].min())

    def success_terms(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, float]:
        card = model.body(CARD_BODY).id
        card_pos, card_quat = data.xpos[card], data.xquat[card]
        terms: dict[str, float] = {}
        for slot in REAL_SLOTS:
            for key, value in card_in_slot_frame(
                card_pos, card_quat, *self.slot_pose(model, data, slot)
            ).items():
                terms[f"slot{slot}_{key}"] = value
        board = model.body(BOARD_BODY).id
        on_board = data.xmat[board].reshape(3, 3).T @ (card_pos - data.xpos[board])
        terms["card_over_board"] = float(
            abs(on_board[0]) < BOARD_HALF[0] + PLATE_HALF[0]
            and abs(on_board[1]) < BOARD_HALF[1] + PLATE_HALF[1]
        )
        terms["card_bottom_z"] = self._card_bottom_z(data, card)
        velocity = np.empty(6)
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, card, velocity, 0)
        terms["card_speed"] = float(np.linalg.norm(velocity[3:]))
        partners = contact_partners(model, data, card)
        fingers = {model.body(ROBOT_PREFIX + f).id for f in FINGER_BODIES}
        terms["held"] = float(bool(partners & fingers))
        return terms

    @staticmethod
    def _slot_args(terms: dict[str, float], slot: int) -> dict[str, float]:
        return {k: terms[f"slot{slot}_{k}"] for k in ("depth", "axial_offset", "lateral_offset", "tilt")}

    def success_from_terms(self, terms: dict[str, float]) -> bool:
        if self.stage == 1:
            return predicates.gpu_inserted(**self._slot_args(terms, 1))
        if self.stage == 2:
            return predicates.gpu_inserted(**self._slot_args(terms, 3))
        if self.stage == 3:
            return predicates.gpu_seated(**self._slot_args(terms, 3))
        in_a_slot = any(predicates.gpu_inserted(**self._slot_args(terms, s)) for s in REAL_SLOTS)
        return predicates.gpu_on_table(
            terms["card_bottom_z"],
            0.0,
            over_board=bool(terms["card_over_board"]),
            inserted=in_a_slot,
            held=bool(terms["held"]),
            speed=terms["card_speed"],
        )

    def instruction(self) -> str:
        return self.instructions[self.stage]


@register_task
class GpuInsertionStage1(GpuInsertion):
    name = "gpu_insertion_stage1"
    stage = 1


@register_task
class GpuInsertionAlias(GpuInsertionStage1):
    """`gpu_insertion` is stage 1, the start of the loop."""

    name = "gpu_insertion"


@register_task
class GpuInsertionStage2(GpuInsertion):
    name = "gpu_insertion_stage2"
    stage = 2


@register_task
class GpuInsertionStage3(GpuInsertion):
    name = "gpu_insertion_stage3"
    stage = 3
    time_limit_s = 10.0


@register_task
class GpuInsertionStage4(GpuInsertion):
    name = "gpu_insertion_stage4"
    stage = 4
