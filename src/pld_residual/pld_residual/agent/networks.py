"""Flax (linen) networks of the residual agent: the residual Gaussian actor, the Q ensemble, log-alpha.

All of them read compact vectors (frozen VLA features + proprioception, and actions), never images: on
this CPU image-based SAC is ~35x slower (design.md §6).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from pld_residual.agent.config import ResidualSACConfig

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}


class MLP(nn.Module):
    """Hidden layers Dense -> LayerNorm -> activation; LayerNorm keeps Q values tame off-distribution."""

    hidden_dims: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for width in self.hidden_dims:
            x = nn.Dense(width)(x)
            x = nn.LayerNorm()(x)
            x = act(x)
        return x


class ResidualActor(nn.Module):
    """pi(a_delta | obs, a_base): mean and log-std of a tanh-squashed Gaussian over the residual.

    The output layer is zero-initialised (kernel and bias), so at step 0 the deterministic residual
    tanh(mean) is exactly 0 and the executed action is exactly the base action.
    """

    action_dim: int
    hidden_dims: Sequence[int]
    activation: str = "tanh"
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs: jax.Array, base_action: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = jnp.concatenate([obs, base_action], axis=-1)
        x = MLP(self.hidden_dims, self.activation)(x)
        out = nn.Dense(
            2 * self.action_dim,
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.zeros,
            name="head",
        )(x)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


class QNetwork(nn.Module):
    """One Q(obs, combined action) -> scalar."""

    hidden_dims: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        x = MLP(self.hidden_dims, self.activation)(x)
        return nn.Dense(1)(x)[..., 0]


class Critic(nn.Module):
    """`num_qs` independent Q networks in one vmapped module: output [num_qs, *batch]."""

    hidden_dims: Sequence[int]
    activation: str = "tanh"
    num_qs: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            QNetwork,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_qs,
        )
        return ensemble(self.hidden_dims, self.activation, name="ensemble")(obs, action)


class ValueNetwork(nn.Module):
    """V(obs), only for the IQL warm start (expectile regression of Q needs a state value)."""

    hidden_dims: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return nn.Dense(1)(MLP(self.hidden_dims, self.activation)(obs))[..., 0]


class Temperature(nn.Module):
    """Learned log(alpha): optimising the log keeps alpha positive without a constraint."""

    init_value: float = 1.0

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("log_alpha", lambda _key: jnp.asarray(math.log(self.init_value), jnp.float32))


def make_actor(cfg: ResidualSACConfig) -> ResidualActor:
    return ResidualActor(
        action_dim=cfg.action_dim,
        hidden_dims=(cfg.hidden,) * cfg.actor_layers,
        activation=cfg.activation,
        log_std_min=cfg.log_std_min,
        log_std_max=cfg.log_std_max,
    )


def make_critic(cfg: ResidualSACConfig) -> Critic:
    return Critic(hidden_dims=(cfg.hidden,) * cfg.critic_layers, activation=cfg.activation, num_qs=cfg.num_qs)


def make_value(cfg: ResidualSACConfig) -> ValueNetwork:
    return ValueNetwork(hidden_dims=(cfg.hidden,) * cfg.critic_layers, activation=cfg.activation)


def axes_mask(cfg: ResidualSACConfig) -> jax.Array | None:
    """1 on the action dimensions the residual may change, 0 elsewhere; None when it changes all."""
    if cfg.residual_axes is None:
        return None
    return jnp.zeros(cfg.action_dim, jnp.float32).at[jnp.asarray(cfg.residual_axes)].set(1.0)


def deterministic_residual(mean: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The residual used at evaluation time: the squashed mean (0 on dimensions outside `mask`)."""
    return jnp.tanh(mean) if mask is None else jnp.tanh(mean) * mask


def sample_residual(
    mean: jax.Array,
    log_std: jax.Array,
    key: jax.Array,
    num_samples: int | None = None,
    mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised tanh-Gaussian sample and its log-probability (with the tanh Jacobian).

    With `num_samples` the result gets a leading sample axis: actions [K, *batch, A], log-probs [K, *batch].
    With `mask` ([A] of 0/1, `axes_mask`) the masked-out dimensions are 0 and leave the log-probability:
    the policy is a distribution over the dimensions it may change only.
    """
    shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
    noise = jax.random.normal(key, shape, mean.dtype)
    std = jnp.exp(log_std)
    pre_tanh = mean + std * noise
    gaussian = -0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi)
    # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), stable for large |u|
    jacobian = 2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    per_dim = gaussian - jacobian
    if mask is None:
        return jnp.tanh(pre_tanh), jnp.sum(per_dim, axis=-1)
    return jnp.tanh(pre_tanh) * mask, jnp.sum(per_dim * mask, axis=-1)
