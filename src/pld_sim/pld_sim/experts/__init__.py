"""Scripted experts for every task (importing this package registers them)."""

from pld_sim.experts import (
    gpu_insertion,  # noqa: F401  (registers)
    peg_insertion,  # noqa: F401  (registers)
    pick_cube,  # noqa: F401  (registers)
    pick_cube_cluttered,  # noqa: F401  (registers)
)
from pld_sim.experts.base import EXPERTS, ExpertConfig, ScriptedExpert, make_expert

__all__ = ["EXPERTS", "ExpertConfig", "ScriptedExpert", "make_expert"]
