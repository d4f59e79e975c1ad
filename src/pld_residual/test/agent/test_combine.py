"""combine() and xi_schedule(), on numpy and inside jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pld_residual.agent.combine import combine, xi_schedule
from pld_residual.agent.config import ResidualSACConfig


def test_combine_adds_scaled_residual_and_clips() -> None:
    base = np.array([0.2, 0.9, -0.9], np.float32)
    delta = np.array([1.0, 1.0, -1.0], np.float32)
    out = combine(base, delta, 0.5, -1.0, 1.0)
    # 0.2 + 0.5 = 0.7; 0.9 + 0.5 = 1.4 -> 1.0; -0.9 - 0.5 = -1.4 -> -1.0
    np.testing.assert_allclose(out, [0.7, 1.0, -1.0], rtol=1e-6)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32


def test_combine_jax_in_jax_out() -> None:
    out = jax.jit(lambda b, d: combine(b, d, 0.25, -1.0, 1.0))(jnp.array([0.0, 0.5]), jnp.array([1.0, -1.0]))
    assert isinstance(out, jax.Array)
    np.testing.assert_allclose(np.asarray(out), [0.25, 0.25])


def test_xi_schedule_is_linear_then_flat() -> None:
    cfg = ResidualSACConfig(xi_initial=0.1, xi_final=0.5, xi_warmup_steps=100)
    assert xi_schedule(0, cfg) == 0.1
    assert abs(xi_schedule(50, cfg) - 0.3) < 1e-9
    assert xi_schedule(100, cfg) == 0.5
    assert xi_schedule(10_000, cfg) == 0.5
    assert abs(float(jax.jit(lambda s: xi_schedule(s, cfg))(jnp.int32(25))) - 0.2) < 1e-6
    assert xi_schedule(3, cfg.replace(xi_warmup_steps=0)) == 0.5
