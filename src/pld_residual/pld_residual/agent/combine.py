"""How the residual reaches the robot: `a = clip(a_base + xi * a_delta)`, and the schedule of xi.

Pure functions on jax or numpy arrays, shared by the learner (inside jit), the learning loop and the
20 Hz ROS combiner node, so that training and execution combine actions the same way.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pld_residual.agent.config import ResidualSACConfig


def combine(base: Any, delta: Any, xi: Any, low: Any = -1.0, high: Any = 1.0) -> Any:
    """Executed action: the base action plus the xi-scaled residual, clipped to the action box.

    numpy in -> numpy out (the ROS node stays off the jax dispatcher); any jax array in -> jax out.
    """
    xp = jnp if any(isinstance(x, jax.Array) for x in (base, delta, xi, low, high)) else np
    return xp.clip(base + xi * delta, low, high)


def xi_schedule(step: Any, cfg: ResidualSACConfig) -> Any:
    """Residual scale at `step`: linear from xi_initial to xi_final over xi_warmup_steps, then constant.

    A small xi first keeps the early, still random residual from pushing a competent base off course.
    Works on Python ints (returns a float) and on traced jax integers (returns a jax scalar).
    """
    if cfg.xi_warmup_steps == 0:
        return cfg.xi_final if isinstance(step, int) else jnp.asarray(cfg.xi_final, jnp.float32)
    if isinstance(step, int):
        frac = min(max(step, 0) / cfg.xi_warmup_steps, 1.0)
        return cfg.xi_initial + frac * (cfg.xi_final - cfg.xi_initial)
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / cfg.xi_warmup_steps, 0.0, 1.0)
    return cfg.xi_initial + frac * (cfg.xi_final - cfg.xi_initial)
