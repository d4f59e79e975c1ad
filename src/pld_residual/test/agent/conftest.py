"""Shared tiny agent setup: one config and one batch shape, so jit compiles `update` once per test run."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pld_residual.agent.config import ResidualSACConfig

OBS_DIM = 6
TINY = ResidualSACConfig(hidden=32, batch_size=16, updates_per_call=25, xi_warmup_steps=100)


@pytest.fixture(scope="session")
def tiny_config() -> ResidualSACConfig:
    return TINY


@pytest.fixture(scope="session")
def obs_dim() -> int:
    return OBS_DIM


@pytest.fixture(scope="session")
def make_batch() -> Callable[..., dict[str, np.ndarray]]:
    """Random float32 batch [U, B, ...]; reward = tanh(obs[0]) and discount 0, so Q has a fixed target."""

    def make(
        updates: int = TINY.updates_per_call, batch: int = TINY.batch_size, seed: int = 0, mc: bool = False
    ):
        rng = np.random.default_rng(seed)
        a = TINY.action_dim
        obs = rng.standard_normal((updates, batch, OBS_DIM)).astype(np.float32)
        out = {
            "obs": obs,
            "base_action": rng.uniform(-0.5, 0.5, (updates, batch, a)).astype(np.float32),
            "action": rng.uniform(-0.5, 0.5, (updates, batch, a)).astype(np.float32),
            "reward": np.tanh(obs[..., 0]).astype(np.float32),
            "discount": np.zeros((updates, batch), np.float32),
            "next_obs": rng.standard_normal((updates, batch, OBS_DIM)).astype(np.float32),
            "next_base_action": rng.uniform(-0.5, 0.5, (updates, batch, a)).astype(np.float32),
        }
        if mc:
            out["mc_return"] = rng.uniform(0.0, 1.0, (updates, batch)).astype(np.float32)
        return out

    return make
