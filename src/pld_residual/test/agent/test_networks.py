"""Networks: zero-initialised residual (combined action == base action at step 0), ensemble shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pld_residual.agent import learner
from pld_residual.agent.combine import combine
from pld_residual.agent.config import ResidualSACConfig
from pld_residual.agent.networks import axes_mask, deterministic_residual, make_critic, sample_residual
from pld_residual.agent.policy import ResidualPolicy


def test_zero_init_residual_keeps_the_base_action() -> None:
    cfg = ResidualSACConfig()  # paper sizes
    policy = ResidualPolicy.create(cfg, obs_dim=12, seed=3)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((5, 12)).astype(np.float32)
    base = rng.uniform(-0.9, 0.9, (5, 7)).astype(np.float32)
    delta = policy.act(obs, base, deterministic=True)
    np.testing.assert_array_equal(delta, np.zeros((5, 7), np.float32))
    for xi in (0.1, 0.5, 1.0):
        np.testing.assert_array_equal(combine(base, delta, xi, -1.0, 1.0), base)
    head = policy.params["params"]["head"]
    assert not np.any(head["kernel"]) and not np.any(head["bias"])


def test_learner_actor_matches_run_time_policy_init(tiny_config: ResidualSACConfig, obs_dim: int) -> None:
    state = learner.create(tiny_config, obs_dim, seed=7)
    fresh = ResidualPolicy.create(tiny_config, obs_dim, seed=7)
    for a, b in zip(jax.tree.leaves(state.actor.params), jax.tree.leaves(fresh.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_critic_ensemble_shapes_and_independent_members() -> None:
    cfg = ResidualSACConfig(hidden=16, num_qs=3)
    critic = make_critic(cfg)
    params = jax.jit(critic.init)(jax.random.PRNGKey(0), jnp.zeros((1, 4)), jnp.zeros((1, 7)))
    apply = jax.jit(critic.apply)
    q = apply(params, jnp.ones((5, 4)), jnp.ones((5, 7)))
    assert q.shape == (3, 5)
    assert len(set(np.round(np.asarray(q[:, 0]), 6))) == 3  # members initialised differently
    assert apply(params, jnp.ones((2, 5, 4)), jnp.ones((2, 5, 7))).shape == (3, 2, 5)


def test_sample_residual_is_in_range_with_tanh_log_prob() -> None:
    mean, log_std = jnp.zeros((4, 2)), jnp.zeros((4, 2))
    sample = jax.jit(sample_residual, static_argnums=3)
    delta, log_prob = sample(mean, log_std, jax.random.PRNGKey(0), 3)
    assert delta.shape == (3, 4, 2) and log_prob.shape == (3, 4)
    assert np.all(np.abs(np.asarray(delta)) < 1.0)
    # by hand for one sample: log N(u; 0, 1) - log(1 - tanh(u)^2), summed over the two dimensions
    u = np.arctanh(np.asarray(delta[0, 0], np.float64))
    expected = np.sum(-0.5 * u**2 - 0.5 * np.log(2 * np.pi) - np.log(1 - np.tanh(u) ** 2))
    assert abs(float(log_prob[0, 0]) - expected) < 1e-3


def test_masked_sample_is_zero_off_the_axes_and_its_log_prob_sums_the_kept_ones() -> None:
    mean = jnp.asarray([[0.3, -0.2, 0.5]])
    log_std = jnp.asarray([[-0.5, 0.1, 0.2]])
    mask = axes_mask(ResidualSACConfig(action_dim=3, residual_axes=(0, 2)))
    delta, log_prob = sample_residual(mean, log_std, jax.random.PRNGKey(3), mask=mask)
    assert float(delta[0, 1]) == 0.0 and float(delta[0, 0]) != 0.0 and float(delta[0, 2]) != 0.0
    full, full_log_prob = sample_residual(mean, log_std, jax.random.PRNGKey(3))  # same noise
    np.testing.assert_allclose(np.asarray(delta[0, [0, 2]]), np.asarray(full[0, [0, 2]]), rtol=1e-6)
    # by hand: the tanh-Gaussian log-density of dimensions 0 and 2 only
    expected = 0.0
    for dim in (0, 2):
        x = float(full[0, dim])
        u = np.arctanh(x)
        sigma = np.exp(float(log_std[0, dim]))
        z = (u - float(mean[0, dim])) / sigma
        expected += -0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi) - np.log(1 - x**2)
    assert abs(float(log_prob[0]) - expected) < 1e-3
    assert abs(float(full_log_prob[0]) - expected) > 0.1  # the full log-prob includes dimension 1
    np.testing.assert_allclose(
        np.asarray(deterministic_residual(mean, mask)),
        np.tanh(np.asarray(mean)) * np.array([1, 0, 1]),
        rtol=1e-6,
    )
    assert axes_mask(ResidualSACConfig()) is None
