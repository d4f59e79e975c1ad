"""The agent's losses as pure functions of arrays: no networks, no randomness, no I/O.

Keeping them free of modules lets each be checked against numbers computed by hand (test_losses.py);
the learner only wires network outputs into them. Shapes: Q = ensemble size, B = batch, K = residual
samples at the next state (OTF), N/M = CQL random/policy action samples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def critic_target(
    next_q_values: jax.Array,
    next_log_probs: jax.Array,
    rewards: jax.Array,
    discounts: jax.Array,
    gamma: float,
    temperature: jax.Array | float,
    backup_entropy: bool = True,
    reward_bias: float = 0.0,
) -> jax.Array:
    """TD target y = r + bias + gamma * d * max_k [min_q Q_q(s', a'_k) - alpha * log pi(a'_k)].

    `next_q_values` is [Q, B] (one next action: plain SAC) or [K, Q, B] for the on-the-fly (OTF) backup,
    where the K next actions are residual samples combined with the same base action at s'. The min over
    the ensemble is clipped double-Q (against over-estimation); the max over K picks the best of several
    residual proposals, so the critic's bootstrap follows what the actor could achieve. `discounts` is 0
    at true terminals (not at time-limit truncations). The result carries no gradient.
    """
    q = next_q_values[None] if next_q_values.ndim == 2 else next_q_values
    log_probs = next_log_probs[None] if next_log_probs.ndim == 1 else next_log_probs
    if q.ndim != 3 or log_probs.shape != (q.shape[0], q.shape[2]):
        raise ValueError(
            f"critic_target: next_q_values {next_q_values.shape} and next_log_probs {next_log_probs.shape} "
            "must be [Q, B] and [B], or [K, Q, B] and [K, B]"
        )
    value = jnp.min(q, axis=1)  # [K, B]
    if backup_entropy:
        value = value - temperature * log_probs
    value = jnp.max(value, axis=0)  # [B]
    return jax.lax.stop_gradient(rewards + reward_bias + gamma * discounts * value)


def critic_loss(q_values: jax.Array, target: jax.Array) -> jax.Array:
    """Squared TD error: mean over the batch, summed over the ensemble ([Q, B] vs [B])."""
    return jnp.sum(jnp.mean((q_values - target[None]) ** 2, axis=-1))


def actor_loss(log_probs: jax.Array, q_values: jax.Array, temperature: jax.Array | float) -> jax.Array:
    """SAC policy loss mean(alpha * log pi - Q), Q averaged over the ensemble ([B], [Q, B]).

    The mean (not the min) over Q follows SERL/RLPD: the target is already pessimistic through its min,
    and the mean gives the actor a smoother signal.
    """
    return jnp.mean(temperature * log_probs - jnp.mean(q_values, axis=0))


def residual_penalty(deterministic_residual: jax.Array, weight: float) -> jax.Array:
    """weight * mean(tanh(mean)^2): pulls the residual's mode towards 0 (= the base action).

    Where the critic has seen no action but the base's, its action gradient is extrapolation; without a
    pull back the deterministic residual can follow that gradient to a constant push that ruins the base.
    """
    return weight * jnp.mean(deterministic_residual**2)


def self_imitation(
    deterministic_residual: jax.Array,
    data_residual: jax.Array,
    returns: jax.Array,
    values: jax.Array,
    weight: float,
) -> jax.Array:
    """weight * mean(max(G - V(s), 0) * |tanh(mean) - data residual|^2): self-imitation (Oh et al. 2018).

    Imitate the residuals of transitions whose Monte-Carlo return beat the current value estimate: on a
    sparse reward these are the episodes that exploration turned into successes. Their return, not the
    critic, carries the signal, so this helps where the critic's action gradient is weak. Shapes: [B, A],
    [B, A], [B], [B]; residuals on masked axes must be 0 in both.
    """
    advantage = jax.lax.stop_gradient(jnp.maximum(returns - values, 0.0))
    error = jnp.sum((deterministic_residual - jax.lax.stop_gradient(data_residual)) ** 2, axis=-1)
    return weight * jnp.mean(advantage * error)


def temperature_loss(log_alpha: jax.Array, log_probs: jax.Array, target_entropy: float) -> jax.Array:
    """alpha * (entropy - target): alpha grows when the policy's entropy drops below the target."""
    entropy = -jax.lax.stop_gradient(log_probs)
    return jnp.exp(log_alpha) * jnp.mean(entropy - target_entropy)


def cql_loss(
    q_data: jax.Array,
    q_random: jax.Array,
    q_policy: jax.Array,
    alpha: float,
    random_log_density: float | None = None,
    policy_log_probs: jax.Array | None = None,
) -> jax.Array:
    """CQL(H) regulariser alpha * sum_q mean_b [logsumexp(Q at random + policy actions) - Q(s, a_data)].

    Pushes Q down on out-of-distribution actions and up on dataset actions. `q_data` [Q, B], `q_random`
    [Q, B, N], `q_policy` [Q, B, M]. With `random_log_density` and `policy_log_probs` [B, M] the terms are
    importance-weighted (each Q minus the log-density its action was drawn from), as in CQL/Cal-QL code.
    """
    if random_log_density is not None:
        q_random = q_random - random_log_density
    if policy_log_probs is not None:
        q_policy = q_policy - policy_log_probs[None]
    ood = jax.nn.logsumexp(jnp.concatenate([q_random, q_policy], axis=-1), axis=-1)  # [Q, B]
    return alpha * jnp.sum(jnp.mean(ood - q_data, axis=-1))


def calql_loss(
    q_data: jax.Array,
    q_random: jax.Array,
    q_policy: jax.Array,
    mc_return: jax.Array,
    alpha: float,
    random_log_density: float | None = None,
    policy_log_probs: jax.Array | None = None,
) -> jax.Array:
    """Cal-QL (Nakamoto et al. 2023): CQL with policy-action Q values floored at the Monte-Carlo return.

    Where Q(s, a_pi) is already below the return of the data policy from s (`mc_return` [B]), CQL would
    push it further down; flooring it there ("calibration") stops that, so the warm-started critic is not
    too pessimistic to fine-tune online. Random actions are not floored.
    """
    floored = jnp.maximum(q_policy, mc_return[None, :, None])
    return cql_loss(q_data, q_random, floored, alpha, random_log_density, policy_log_probs)


def iql_expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """Asymmetric L2 on diff = Q - V: weight tau where V is below Q, 1 - tau where above (IQL's V loss).

    With tau > 0.5 V tracks an upper expectile of Q over dataset actions: an in-sample max.
    """
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return jnp.mean(weight * diff**2)
