"""Simulated robots and tasks for PLD: MuJoCo scenes from real robot models, differential-IK control,
cameras, gymnasium environments, scripted experts and task success predicates; the sim hardware node.

`pld_sim.make("pick_cube")` returns a `gymnasium.Env`; `pld_sim.TASKS` lists the registered tasks.
The names load on first use, so `import pld_sim.cli` (the `pld sim` command) stays cheap.
"""

import os

# headless: offscreen EGL unless the user chose a backend (must happen before mujoco loads)
if "DISPLAY" not in os.environ:
    os.environ.setdefault("MUJOCO_GL", "egl")

__all__ = ["TASKS", "PldSimEnv", "SimConfig", "make"]


def __getattr__(name: str):
    if name in ("PldSimEnv", "SimConfig", "make"):
        from pld_sim import env

        return getattr(env, name)
    if name == "TASKS":
        from pld_sim.tasks import TASKS

        return TASKS
    raise AttributeError(f"module 'pld_sim' has no attribute {name!r}")
