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
