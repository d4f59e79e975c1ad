"""Simulated robots and tasks for PLD: MuJoCo scenes from real robot models, differential-IK control,
cameras, gymnasium environments, scripted experts and task success predicates; the sim hardware node.

`pld_sim.make("pick_cube")` returns a `gymnasium.Env`; `pld_sim.TASKS` lists the registered tasks.
"""

import os

if (
    "DISPLAY" not in os.environ
):  # headless: offscreen EGL unless the user chose a backend (before mujoco loads)
    os.environ.setdefault("MUJOCO_GL", "egl")

from pld_sim.env import PldSimEnv, SimConfig, make
from pld_sim.tasks import TASKS

__all__ = ["TASKS", "PldSimEnv", "SimConfig", "make"]
