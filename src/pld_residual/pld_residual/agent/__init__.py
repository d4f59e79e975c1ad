"""Residual SAC agent core in JAX/Flax/Optax (no ROS): config, networks, losses, learner, policy.

`learner` holds the immutable training state and the jitted `update` / `pretrain_critic`; `policy`
holds the run-time actor used by the learning loop and the ROS actor node; `combine` is how the
residual reaches the robot. Names are imported lazily: `pld --help` builds every subcommand's parser
and must not pay for importing jax and flax.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ResidualSACConfig": "pld_residual.agent.config",
    "combine": "pld_residual.agent.combine",
    "xi_schedule": "pld_residual.agent.combine",
    "ResidualPolicy": "pld_residual.agent.policy",
    "PARAMS_FORMAT": "pld_residual.agent.policy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pld_residual.agent' has no attribute {name!r}")
