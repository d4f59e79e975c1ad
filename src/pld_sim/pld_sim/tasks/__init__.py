"""The task registry: importing this package registers every task."""

from pld_sim.tasks import (
    gpu_insertion,  # noqa: F401  (registers)
    peg_insertion,  # noqa: F401  (registers)
    pick_cube,  # noqa: F401  (registers)
    pick_cube_cluttered,  # noqa: F401  (registers)
)
from pld_sim.tasks.base import TASKS, Task, make_task, register_task

__all__ = ["TASKS", "Task", "make_task", "register_task"]
