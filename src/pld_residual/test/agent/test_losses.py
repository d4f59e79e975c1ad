"""The losses against numbers computed by hand on tiny inputs."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pld_residual.agent import losses


def close(value: jax.Array, expected: float) -> None:
    assert float(value) == pytest.approx(expected, abs=1e-5)


def test_critic_target_clipped_double_q() -> None:
    next_q = jnp.array([[1.0, 4.0], [2.0, 3.0]])  # [Q=2, B=2]; min over Q -> [1, 3]
    log_probs = jnp.array([0.5, -1.0])
    rewards, discounts = jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])
    y = losses.critic_target(next_q, log_probs, rewards, discounts, 0.9, 0.2, backup_entropy=True)
    # soft value [1 - 0.2*0.5, 3 + 0.2*1] = [0.9, 3.2]; y0 = 1 + 0.9*0.9; y1 = 0 (terminal)
    np.testing.assert_allclose(np.asarray(y), [1.81, 0.0], atol=1e-6)
    y = losses.critic_target(next_q, log_probs, rewards, discounts, 0.9, 0.2, backup_entropy=False)
    np.testing.assert_allclose(np.asarray(y), [1.9, 0.0], atol=1e-6)
    y = losses.critic_target(next_q, log_probs, rewards, discounts, 0.9, 0.2, reward_bias=-1.0)
    np.testing.assert_allclose(np.asarray(y), [0.81, -1.0], atol=1e-6)


def test_critic_target_otf_max_over_k_samples() -> None:
    # [K=3, Q=2, B=1]: mins over Q per sample are 1.0, 0.5, 2.5
    next_q = jnp.array([[[1.0], [2.0]], [[5.0], [0.5]], [[3.0], [2.5]]])
    log_probs = jnp.array([[0.0], [0.0], [4.0]])
    r, d = jnp.array([0.0]), jnp.array([1.0])
    # without entropy: max(1.0, 0.5, 2.5) = 2.5 -> 0.99 * 2.5
    close(losses.critic_target(next_q, log_probs, r, d, 0.99, 0.5, backup_entropy=False)[0], 2.475)
    # with entropy: [1.0, 0.5, 2.5 - 0.5*4] = [1.0, 0.5, 0.5]: the first sample wins -> 0.99 * 1.0
    close(losses.critic_target(next_q, log_probs, r, d, 0.99, 0.5, backup_entropy=True)[0], 0.99)
    # K = 1 is plain SAC
    single = losses.critic_target(next_q[:1], log_probs[:1], r, d, 0.99, 0.5)
    close(single[0], 0.99)
    with pytest.raises(ValueError, match="next_log_probs"):
        losses.critic_target(next_q, log_probs[:2], r, d, 0.99, 0.5)


def test_critic_target_has_no_gradient() -> None:
    grad = jax.grad(lambda q: losses.critic_target(q, jnp.zeros(1), jnp.zeros(1), jnp.ones(1), 0.9, 1.0)[0])
    np.testing.assert_array_equal(np.asarray(grad(jnp.array([[1.0], [2.0]]))), 0.0)


def test_critic_loss() -> None:
    q = jnp.array([[1.0, 2.0], [4.0, 1.0]])  # [Q, B]
    target = jnp.array([2.0, 1.0])
    # Q0: (1 + 1) / 2 = 1; Q1: (4 + 0) / 2 = 2; summed over the ensemble
    close(losses.critic_loss(q, target), 3.0)


def test_actor_loss() -> None:
    log_probs = jnp.array([1.0, -1.0])
    q = jnp.array([[2.0, 4.0], [4.0, 0.0]])  # mean over Q -> [3, 2]
    # [0.5*1 - 3, 0.5*(-1) - 2] = [-2.5, -2.5]
    close(losses.actor_loss(log_probs, q, 0.5), -2.5)


def test_residual_penalty_by_hand() -> None:
    residual = jnp.array([[0.5, -1.0], [0.0, 0.5]])
    # mean of squares = (0.25 + 1 + 0 + 0.25) / 4 = 0.375
    assert float(losses.residual_penalty(residual, 0.2)) == pytest.approx(0.2 * 0.375)
    grad = jax.grad(lambda r: losses.residual_penalty(r, 0.2))(residual)
    assert np.allclose(grad, 0.2 * 2 * np.asarray(residual) / 4)  # points away from 0: descent shrinks it
    assert float(losses.residual_penalty(residual, 0.0)) == 0.0


def test_self_imitation_by_hand() -> None:
    policy = jnp.array([[0.0, 0.0], [0.5, 0.0], [1.0, 1.0]])
    data = jnp.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    returns = jnp.array([0.9, 0.3, 0.0])
    values = jnp.array([0.5, 0.5, 0.5])
    # advantages 0.4, 0 (return below V), 0 (failure); errors 1, 0.25, 2 -> mean(0.4 * 1, 0, 0) = 0.4 / 3
    assert float(losses.self_imitation(policy, data, returns, values, 2.0)) == pytest.approx(2.0 * 0.4 / 3)
    grad = np.asarray(jax.grad(lambda p: losses.self_imitation(p, data, returns, values, 2.0))(policy))
    np.testing.assert_allclose(grad[0], [2.0 * 0.4 * 2 * -1.0 / 3, 0.0], rtol=1e-6)  # towards the data
    assert not grad[1:].any()  # below-value and failed transitions are not imitated
    values_grad = jax.grad(lambda v: losses.self_imitation(policy, data, returns, v, 2.0))(values)
    assert not np.asarray(values_grad).any()  # the baseline is not trained through this loss


def test_temperature_loss_and_its_gradient() -> None:
    log_probs = jnp.array([-1.0, -3.0])  # entropy estimate 2.0
    log_alpha = jnp.log(2.0)
    # alpha * (entropy - target) = 2 * (2 + 3.5)
    close(losses.temperature_loss(log_alpha, log_probs, -3.5), 11.0)
    # d/dlog_alpha = the same value: positive, so gradient descent lowers alpha (entropy is above target)
    close(jax.grad(losses.temperature_loss)(log_alpha, log_probs, -3.5), 11.0)
    close(losses.temperature_loss(jnp.log(0.5), jnp.array([2.0]), -1.0), 0.5 * (-2.0 + 1.0))
    # no gradient flows into the policy through the temperature loss
    close(jax.grad(losses.temperature_loss, argnums=1)(log_alpha, log_probs, -3.5).sum(), 0.0)


Q_DATA = jnp.array([[1.0]])  # [Q=1, B=1]
Q_RANDOM = jnp.array([[[0.0]]])  # [Q, B, N=1]: exp -> 1
Q_POLICY = jnp.array([[[math.log(2.0), math.log(3.0)]]])  # [Q, B, M=2]: exp -> 2, 3


def test_cql_loss() -> None:
    # alpha * (log(1 + 2 + 3) - 1)
    close(losses.cql_loss(Q_DATA, Q_RANDOM, Q_POLICY, 2.0), 2.0 * (math.log(6.0) - 1.0))
    # summed over the ensemble: two identical Q functions -> twice the value
    two = (jnp.concatenate([x, x]) for x in (Q_DATA, Q_RANDOM, Q_POLICY))
    close(losses.cql_loss(*two, 2.0), 4.0 * (math.log(6.0) - 1.0))


def test_cql_loss_importance_sampled() -> None:
    # random: 0 - (-log 2) = log 2 -> 2; policy: [log2 - 0, log3 - log3] -> 2, 1; lse = log 5
    value = losses.cql_loss(
        Q_DATA, Q_RANDOM, Q_POLICY, 1.0, random_log_density=-math.log(2.0),
        policy_log_probs=jnp.array([[0.0, math.log(3.0)]]),
    )  # fmt: skip
    close(value, math.log(5.0) - 1.0)


def test_calql_bound_inactive_equals_cql() -> None:
    # MC return -5 lies below every policy Q: no flooring
    value = losses.calql_loss(Q_DATA, Q_RANDOM, Q_POLICY, jnp.array([-5.0]), 2.0)
    close(value, 2.0 * (math.log(6.0) - 1.0))


def test_calql_bound_active() -> None:
    # MC return log 5 floors both policy Qs (log 2, log 3) at log 5; the random Q (0) is not floored:
    # alpha * (log(1 + 5 + 5) - 1)
    close(
        losses.calql_loss(Q_DATA, Q_RANDOM, Q_POLICY, jnp.array([math.log(5.0)]), 2.0),
        2.0 * (math.log(11) - 1),
    )
    # partly active: floor log 2.5 lifts log 2 only -> log(1 + 2.5 + 3)
    close(losses.calql_loss(Q_DATA, Q_RANDOM, Q_POLICY, jnp.array([math.log(2.5)]), 1.0), math.log(6.5) - 1.0)


def test_calql_floored_policy_values_get_no_gradient() -> None:
    grad = jax.grad(lambda qp: losses.calql_loss(Q_DATA, Q_RANDOM, qp, jnp.array([math.log(2.5)]), 1.0))(
        Q_POLICY
    )
    # d lse / d q_j = exp(q_j) / sum = 3 / 6.5 for the unfloored one, 0 for the floored one
    np.testing.assert_allclose(np.asarray(grad)[0, 0], [0.0, 3.0 / 6.5], atol=1e-6)


def test_iql_expectile_loss() -> None:
    # diff 2 (V below Q): 0.7 * 4; diff -1 (V above Q): 0.3 * 1; mean of [2.8, 0.3]
    close(losses.iql_expectile_loss(jnp.array([2.0, -1.0]), 0.7), 1.55)
