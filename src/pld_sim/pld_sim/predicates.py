"""Task success predicates: named pure functions of extracted quantities, tested on constructed states.

Tasks extract the quantities from the MuJoCo state (`Task.success_terms`) and call these, so the rule
itself is readable and testable without a simulator.
"""

from __future__ import annotations

LIFT_HEIGHT_M = 0.05


def cube_lifted_and_held(
    cube_bottom_z: float,
    table_z: float,
    touching_left_finger: bool,
    touching_right_finger: bool,
    lift_height: float = LIFT_HEIGHT_M,
) -> bool:
    """Pick-cube success: the cube is at least `lift_height` above the table and both fingers touch it."""
    return cube_bottom_z - table_z >= lift_height and touching_left_finger and touching_right_finger


INSERTION_DEPTH_M = 0.02


def peg_inserted(
    peg_bottom_depth: float,
    peg_lateral_offset: float,
    hole_half_width: float,
    min_depth: float = INSERTION_DEPTH_M,
) -> bool:
    """Peg-insertion success: the peg's bottom face is at least `min_depth` below the fixture's top surface
    and its centre lies inside the hole's opening.

    `peg_bottom_depth` is measured downwards from the top surface (negative: still above it);
    `peg_lateral_offset` is the larger of the two horizontal offsets of the bottom-face centre from the
    hole axis, in the fixture's frame (a square hole). The lateral test is what tells a peg in the hole
    from one standing on the table beside the fixture, whose bottom is also below the top surface.
    """
    return peg_bottom_depth >= min_depth and abs(peg_lateral_offset) <= hole_half_width


# GPU insertion (YAM). Quantities are in the slot's frame: `depth` is how far the card's bottom edge is
# below the top of the slot walls, offsets are of the edge's middle from the channel's middle.
GPU_INSERTED_DEPTH_M = 0.01  # well into the slot's channel: resting on the retention clips is ~16 mm
GPU_SEATED_DEPTH_M = 0.023  # the slot is 25 mm deep: within 2 mm of the bottom, past the clips
GPU_MAX_LATERAL_OFFSET_M = 0.006  # the channel is 8 mm wide
GPU_MAX_AXIAL_OFFSET_M = 0.02
GPU_MAX_TILT_RAD = 0.26  # 15 degrees
GPU_TABLE_CONTACT_M = 0.005
GPU_AT_REST_SPEED = 0.05


def gpu_inserted(
    depth: float,
    axial_offset: float,
    lateral_offset: float,
    tilt: float,
    min_depth: float = GPU_INSERTED_DEPTH_M,
) -> bool:
    """The card's edge is inside the slot's channel at least `min_depth` deep and the card is upright."""
    return (
        depth >= min_depth
        and abs(lateral_offset) <= GPU_MAX_LATERAL_OFFSET_M
        and abs(axial_offset) <= GPU_MAX_AXIAL_OFFSET_M
        and tilt <= GPU_MAX_TILT_RAD
    )


def gpu_seated(depth: float, axial_offset: float, lateral_offset: float, tilt: float) -> bool:
    """Fully seated: inserted to within 2 mm of the slot's bottom (past the retention clips)."""
    return gpu_inserted(depth, axial_offset, lateral_offset, tilt, min_depth=GPU_SEATED_DEPTH_M)


def gpu_on_table(
    card_bottom_z: float,
    table_z: float,
    over_board: bool,
    inserted: bool,
    held: bool,
    speed: float,
) -> bool:
    """Unplugged and put down: resting on the table (not the board), in no slot, released and still."""
    return (
        card_bottom_z - table_z <= GPU_TABLE_CONTACT_M
        and not over_board
        and not inserted
        and not held
        and speed <= GPU_AT_REST_SPEED
    )
