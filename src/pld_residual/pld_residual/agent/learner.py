"""Immutable residual SAC learner: `create(...)`, jitted `update(state, batch)` and `pretrain_critic(...)`.

One call of `update` runs `U` gradient steps with `jax.lax.scan` over a batch whose arrays have a leading
`[U, batch_size, ...]` axis, so the Python loop dispatches once per U steps (the ikostrikov/rlpd pattern).

Batch keys (float32): `obs` [U,B,D], `base_action` [U,B,A], `action` [U,B,A] (the executed, combined
action), `reward` [U,B], `discount` [U,B] (0 at true terminals only; gamma^(k-1) for a k-step transition
of an n-step buffer), `next_obs` [U,B,D], `next_base_action` [U,B,A]; optional `mc_return` [U,B] (needed
by the Cal-QL warm start) and `xi` [U] or [U,B].

Residual scale xi: by default each gradient step uses `xi_schedule(state.step, config)`, i.e. the schedule
runs over gradient steps; a loop that schedules by environment steps (or wants a fixed xi) passes `xi` in
the batch instead, and then must give the same xi to the action combiner. `current_xi(state)` tells the
combiner the learner's value.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import flax.struct as struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from pld_residual.agent import losses
from pld_residual.agent.combine import combine, xi_schedule
from pld_residual.agent.config import ResidualSACConfig, check_obs_dim
from pld_residual.agent.networks import (
    Temperature,
    axes_mask,
    deterministic_residual,
    make_actor,
    make_critic,
    make_value,
    sample_residual,
)

REQUIRED_KEYS = ("obs", "base_action", "action", "reward", "discount", "next_obs", "next_base_action")
_ACTOR_METRICS = ("actor_loss", "temperature_loss", "entropy", "temperature", "actor_q", "residual_abs")


@struct.dataclass
class ResidualSACState:
    """Everything the learner needs between updates; a pytree, so it passes through jit and scan."""

    actor: TrainState
    critic: TrainState
    target_critic_params: Any
    temperature: TrainState
    value: TrainState | None  # only with warmstart="iql"
    rng: jax.Array  # raw uint32 PRNG key (serialisable)
    step: jax.Array  # online gradient steps done (int32); drives xi and the critic:actor ratio
    actor_metrics: dict[str, jax.Array]  # latest actor/temperature step, reported between actor steps
    actor_ema_params: Any  # Polyak average of the actor (config.actor_ema), the deployed policy; else None
    config: ResidualSACConfig = struct.field(pytree_node=False)
    obs_dim: int = struct.field(pytree_node=False)

    @property
    def action_dim(self) -> int:
        return self.config.action_dim


def _kernel_mask(params: Any) -> Any:
    # weight decay on weight matrices only: decaying LayerNorm scales or biases just fights the norm
    return jax.tree.map(lambda leaf: leaf.ndim > 1, params)


def _optimizer(lr: float, cfg: ResidualSACConfig, decay: bool = True) -> optax.GradientTransformation:
    inner = optax.adamw(lr, weight_decay=cfg.weight_decay, mask=_kernel_mask) if decay else optax.adam(lr)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), inner)


class _Parts(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    temperature: nn.Module
    value: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    temp_tx: optax.GradientTransformation


@functools.cache
def _parts(config: ResidualSACConfig) -> _Parts:
    """One set of module and optimiser objects per config.

    They are static metadata of the state pytree; reusing the same objects means every state built for a
    config (fresh, or loaded from a checkpoint) hits the same `update` compilation.
    """
    return _Parts(
        actor=make_actor(config),
        critic=make_critic(config),
        temperature=Temperature(config.init_temperature),
        value=make_value(config),
        actor_tx=_optimizer(config.actor_lr, config),
        critic_tx=_optimizer(config.critic_lr, config),
        temp_tx=_optimizer(config.temp_lr, config, decay=False),
    )


def _train_state(module: nn.Module, params: Any, tx: optax.GradientTransformation) -> TrainState:
    # an int32 array step from the start, so the first and later `update` calls share one compilation
    return TrainState(
        step=jnp.zeros((), jnp.int32), apply_fn=module.apply, params=params, tx=tx, opt_state=tx.init(params)
    )


def init_actor_params(config: ResidualSACConfig, obs_dim: int, seed: int = 0) -> Any:
    """Actor parameters exactly as `create` makes them for this seed (the run-time policy needs no critic)."""
    return _init_actor(config, check_obs_dim(obs_dim), jnp.asarray(seed, jnp.uint32))


# Initialisation is jitted (config and sizes static): eager mode would compile every small op on its own,
# which costs seconds on a busy 2-core machine.
@functools.partial(jax.jit, static_argnums=(0, 1))
def _init_actor(config: ResidualSACConfig, obs_dim: int, seed: jax.Array) -> Any:
    actor_key = jax.random.split(jax.random.PRNGKey(seed), 4)[1]
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    return _parts(config).actor.init(actor_key, obs, jnp.zeros((1, config.action_dim), jnp.float32))


def create(
    config: ResidualSACConfig, obs_dim: int, action_dim: int | None = None, seed: int = 0
) -> ResidualSACState:
    """Fresh learner: zero-residual actor, random critic, target = critic, alpha = init_temperature."""
    if action_dim is not None and action_dim != config.action_dim:
        raise ValueError(f"action_dim {action_dim} disagrees with config.action_dim {config.action_dim}")
    obs_dim = check_obs_dim(obs_dim)
    seed_array = jnp.asarray(seed, jnp.uint32)
    return _create(config, obs_dim, seed_array, _init_actor(config, obs_dim, seed_array))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _create(config: ResidualSACConfig, obs_dim: int, seed: jax.Array, actor_params: Any) -> ResidualSACState:
    parts = _parts(config)
    rng, _actor_key, critic_key, value_key = jax.random.split(jax.random.PRNGKey(seed), 4)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    act = jnp.zeros((1, config.action_dim), jnp.float32)
    critic_params = parts.critic.init(critic_key, _critic_obs(config, obs, act), act)
    value = None
    if config.warmstart == "iql":
        value = _train_state(parts.value, parts.value.init(value_key, obs), parts.critic_tx)
    metrics = {name: jnp.zeros((), jnp.float32) for name in _ACTOR_METRICS}
    metrics["temperature"] = jnp.asarray(config.init_temperature, jnp.float32)
    temp_params = parts.temperature.init(jax.random.PRNGKey(0))
    return ResidualSACState(
        actor=_train_state(parts.actor, actor_params, parts.actor_tx),
        critic=_train_state(parts.critic, critic_params, parts.critic_tx),
        target_critic_params=critic_params,
        temperature=_train_state(parts.temperature, temp_params, parts.temp_tx),
        value=value,
        rng=rng,
        step=jnp.zeros((), jnp.int32),
        actor_metrics=metrics,
        actor_ema_params=actor_params if config.actor_ema is not None else None,
        config=config,
        obs_dim=obs_dim,
    )


def policy_params(state: ResidualSACState) -> Any:
    """The actor parameters to evaluate and deploy: the Polyak average with `actor_ema`, else the actor's.

    Training rollouts keep acting with the actor itself (`state.actor.params`), as off-policy RL explores
    with the policy it is improving.
    """
    return state.actor.params if state.actor_ema_params is None else state.actor_ema_params


def current_xi(state: ResidualSACState) -> float:
    """The residual scale the learner uses now (for the action combiner of the acting loop/node)."""
    return float(xi_schedule(int(state.step), state.config))


def _alpha(state: ResidualSACState) -> jax.Array:
    return jnp.exp(state.temperature.apply_fn(state.temperature.params))


def _xi(state: ResidualSACState, batch: Mapping[str, jax.Array]) -> jax.Array:
    if "xi" in batch:
        xi = batch["xi"]
        return xi[:, None] if xi.ndim == 1 else xi  # per-sample xi [B] -> [B, 1]
    return xi_schedule(state.step, state.config)


_MIN_XI = 1e-3  # floor for the division in `_residual_of` (xi may start at 0)


def _residual_of(base: jax.Array, action: jax.Array, xi: Any) -> jax.Array:
    """The unsquashed residual that executes `action` on top of `base` at scale xi."""
    return (action - base) / jnp.maximum(xi, _MIN_XI)


def _critic_obs(cfg: ResidualSACConfig, obs: jax.Array, base_action: jax.Array) -> jax.Array:
    """What the critic reads besides the action: the observation, and the base action when configured."""
    sees_base = cfg.critic_sees_base or cfg.critic_action == "residual"
    return jnp.concatenate([obs, base_action], axis=-1) if sees_base else obs


def _critic_action(cfg: ResidualSACConfig, base: jax.Array, action: jax.Array, xi: Any) -> jax.Array:
    """The executed action as the critic reads it (`config.critic_action`).

    "residual": (a - a_base) / xi, the residual the current xi needs to execute a (data of any source,
    base-only steps give 0); methods without base guidance have a_base = 0 and xi = 1, so it is a.
    """
    if cfg.critic_action == "combined":
        return action
    return _residual_of(base, action, xi)


def _data_residual(cfg: ResidualSACConfig, base: jax.Array, action: jax.Array, xi: jax.Array) -> jax.Array:
    """The residual that produced a stored action, (a - a_base) / xi in [-1, 1], 0 off the residual axes.

    Exact while xi is the one the data were collected with (fixed xi); under a schedule it is approximate.
    """
    delta = jnp.clip(_residual_of(base, action, xi), -1.0, 1.0)
    mask = axes_mask(cfg)
    return delta if mask is None else delta * mask


def _combine(cfg: ResidualSACConfig, base: jax.Array, delta: jax.Array, xi: jax.Array) -> jax.Array:
    return combine(base, delta, xi, cfg.action_low, cfg.action_high)


def _next_state_target(
    state: ResidualSACState, batch: Mapping[str, jax.Array], xi: jax.Array, key: jax.Array
) -> jax.Array:
    """TD target with K residual samples at s' (base action at s' held fixed) and the target critic.

    With `target_qs`, the min runs over a random subset of the Q heads (REDQ's in-target minimisation).
    """
    cfg = state.config
    k = cfg.otf_samples
    sample_key, subset_key = jax.random.split(key)
    mean, log_std = state.actor.apply_fn(state.actor.params, batch["next_obs"], batch["next_base_action"])
    delta, log_probs = sample_residual(mean, log_std, sample_key, k, axes_mask(cfg))  # [K, B, A], [K, B]
    next_base = batch["next_base_action"][None]
    next_action = _critic_action(cfg, next_base, _combine(cfg, next_base, delta, xi), xi)
    critic_next = _critic_obs(cfg, batch["next_obs"], batch["next_base_action"])
    next_obs = jnp.broadcast_to(critic_next[None], (k, *critic_next.shape))
    next_q = state.critic.apply_fn(state.target_critic_params, next_obs, next_action)  # [Q, K, B]
    if cfg.target_qs is not None and cfg.target_qs < cfg.num_qs:
        heads = jax.random.choice(subset_key, cfg.num_qs, (cfg.target_qs,), replace=False)
        next_q = next_q[heads]
    return losses.critic_target(
        jnp.swapaxes(next_q, 0, 1),
        log_probs,
        batch["reward"],
        batch["discount"],
        cfg.gamma,
        _alpha(state),
        cfg.backup_entropy,
        cfg.reward_bias,
    )


def _apply_critic_grads(state: ResidualSACState, grads: Any) -> ResidualSACState:
    critic = state.critic.apply_gradients(grads=grads)
    target = optax.incremental_update(critic.params, state.target_critic_params, state.config.tau)
    return state.replace(critic=critic, target_critic_params=target)


def _critic_step(
    state: ResidualSACState, batch: Mapping[str, jax.Array], xi: jax.Array, key: jax.Array
) -> tuple[ResidualSACState, dict[str, jax.Array]]:
    target = _next_state_target(state, batch, xi, key)
    critic_obs = _critic_obs(state.config, batch["obs"], batch["base_action"])
    action = _critic_action(state.config, batch["base_action"], batch["action"], xi)

    def loss_fn(params: Any) -> tuple[jax.Array, jax.Array]:
        q = state.critic.apply_fn(params, critic_obs, action)
        return losses.critic_loss(q, target), q

    (loss, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.critic.params)
    info = {"critic_loss": loss, "q_mean": jnp.mean(q), "target_q_mean": jnp.mean(target)}
    return _apply_critic_grads(state, grads), info


def _actor_step(
    state: ResidualSACState, batch: Mapping[str, jax.Array], xi: jax.Array, key: jax.Array
) -> ResidualSACState:
    cfg = state.config
    alpha = _alpha(state)

    def loss_fn(params: Any) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        mean, log_std = state.actor.apply_fn(params, batch["obs"], batch["base_action"])
        delta, log_probs = sample_residual(mean, log_std, key, mask=axes_mask(cfg))
        q = state.critic.apply_fn(
            state.critic.params,
            _critic_obs(cfg, batch["obs"], batch["base_action"]),
            _critic_action(cfg, batch["base_action"], _combine(cfg, batch["base_action"], delta, xi), xi),
        )
        deterministic = deterministic_residual(mean, axes_mask(cfg))
        loss = losses.actor_loss(log_probs, q, alpha)
        loss = loss + losses.residual_penalty(deterministic, cfg.residual_penalty)
        if cfg.self_imitation > 0:
            loss = loss + losses.self_imitation(
                deterministic,
                _data_residual(cfg, batch["base_action"], batch["action"], xi),
                batch["mc_return"],
                jnp.mean(q, axis=0),
                cfg.self_imitation,
            )
        return loss, (log_probs, q, jnp.mean(jnp.abs(deterministic)))

    (a_loss, (log_probs, q, residual_abs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.actor.params
    )
    actor = state.actor.apply_gradients(grads=grads)
    ema = state.actor_ema_params
    if cfg.actor_ema is not None:
        ema = optax.incremental_update(actor.params, ema, 1.0 - cfg.actor_ema)

    def temp_fn(params: Any) -> jax.Array:
        log_alpha = state.temperature.apply_fn(params)
        return losses.temperature_loss(log_alpha, log_probs, cfg.resolved_target_entropy)

    t_loss, t_grads = jax.value_and_grad(temp_fn)(state.temperature.params)
    temperature = state.temperature.apply_gradients(grads=t_grads)
    metrics = {
        "actor_loss": a_loss,
        "temperature_loss": t_loss,
        "entropy": -jnp.mean(log_probs),
        "temperature": jnp.exp(temperature.apply_fn(temperature.params)),
        "actor_q": jnp.mean(q),
        "residual_abs": residual_abs,  # mean |deterministic residual|: how far from the base it acts
    }
    return state.replace(actor=actor, temperature=temperature, actor_metrics=metrics, actor_ema_params=ema)


def _train_step(
    state: ResidualSACState, batch: Mapping[str, jax.Array]
) -> tuple[ResidualSACState, dict[str, jax.Array]]:
    """One online gradient step: critic always, actor + temperature every `critic_actor_ratio` steps."""
    rng, critic_key, actor_key = jax.random.split(state.rng, 3)
    state = state.replace(rng=rng)
    xi = _xi(state, batch)
    state, info = _critic_step(state, batch, xi, critic_key)
    do_actor = (state.step + 1) % state.config.critic_actor_ratio == 0
    state = jax.lax.cond(do_actor, lambda s: _actor_step(s, batch, xi, actor_key), lambda s: s, state)
    info["xi"] = jnp.mean(jnp.asarray(xi, jnp.float32))
    info["actor_updated"] = do_actor.astype(jnp.float32)
    return state.replace(step=state.step + 1), info


def _check_batch(batch: Mapping[str, Any], state: ResidualSACState, required: tuple[str, ...]) -> None:
    """Shape checks at trace time, so a wrong batch fails with a message instead of inside XLA."""
    missing = [key for key in required if key not in batch]
    if missing:
        raise ValueError(f"batch is missing key(s) {missing}; it has {sorted(batch)}")
    lead = tuple(batch["reward"].shape)
    if len(lead) != 2:
        raise ValueError(f"batch['reward'] must be [updates, batch_size], got shape {lead}")
    dims = {"obs": state.obs_dim, "next_obs": state.obs_dim}
    dims.update({key: state.action_dim for key in ("base_action", "action", "next_base_action")})
    for key, width in dims.items():
        if tuple(batch[key].shape) != (*lead, width):
            raise ValueError(
                f"batch[{key!r}] must have shape {(*lead, width)}, got {tuple(batch[key].shape)}"
            )
    for key in ("discount", "mc_return"):
        if key in batch and tuple(batch[key].shape) != lead:
            raise ValueError(f"batch[{key!r}] must have shape {lead}, got {tuple(batch[key].shape)}")
    if "xi" in batch and tuple(batch["xi"].shape) not in (lead[:1], lead):
        raise ValueError(f"batch['xi'] must have shape {lead[:1]} or {lead}, got {tuple(batch['xi'].shape)}")


def _as_float32(batch: Mapping[str, Any]) -> dict[str, jax.Array]:
    return {key: jnp.asarray(value, jnp.float32) for key, value in batch.items()}


@jax.jit
def update(
    state: ResidualSACState, batch: Mapping[str, Any]
) -> tuple[ResidualSACState, dict[str, jax.Array]]:
    """Run U = batch['reward'].shape[0] online gradient steps in one dispatch; info is averaged over them.

    Actor metrics (`actor_loss`, `entropy`, `temperature`, ...) are those of the latest actor step, which
    may lie in an earlier call when U < critic_actor_ratio.
    """
    _check_batch(
        batch, state, (*REQUIRED_KEYS, "mc_return") if state.config.self_imitation > 0 else REQUIRED_KEYS
    )
    state, infos = jax.lax.scan(_train_step, state, _as_float32(batch))
    actor_updates = jnp.sum(infos.pop("actor_updated"))
    info = {key: jnp.mean(value) for key, value in infos.items()}
    info["actor_updates"] = actor_updates
    info.update(state.actor_metrics)
    info["step"] = state.step
    return state, info


def _pretrain_step(
    state: ResidualSACState, batch: Mapping[str, jax.Array]
) -> tuple[ResidualSACState, dict[str, jax.Array]]:
    cfg = state.config
    rng, td_key, random_key, policy_key = jax.random.split(state.rng, 4)
    state = state.replace(rng=rng)
    xi = _xi(state, batch)
    if cfg.warmstart == "iql":
        return _iql_step(state, batch, xi)

    target = _next_state_target(state, batch, xi, td_key)
    n, shape = cfg.cql_num_samples, batch["base_action"].shape
    mask = axes_mask(cfg)
    random_delta = jax.random.uniform(random_key, (n, *shape), minval=-1.0, maxval=1.0)
    random_delta = random_delta if mask is None else random_delta * mask
    mean, log_std = state.actor.apply_fn(state.actor.params, batch["obs"], batch["base_action"])
    policy_delta, policy_log_probs = sample_residual(mean, log_std, policy_key, n, mask)
    critic_obs = _critic_obs(cfg, batch["obs"], batch["base_action"])
    obs_n = jnp.broadcast_to(critic_obs[None], (n, *critic_obs.shape))
    base_n = batch["base_action"][None]
    random_action = _critic_action(cfg, base_n, _combine(cfg, base_n, random_delta, xi), xi)
    policy_action = _critic_action(cfg, base_n, _combine(cfg, base_n, policy_delta, xi), xi)
    data_action = _critic_action(cfg, batch["base_action"], batch["action"], xi)
    # both samplers live in the residual space [-1, 1]^A, so their densities are comparable there
    random_log_density = -cfg.residual_dims * math.log(2.0) if cfg.cql_importance_sample else None
    policy_log_probs = policy_log_probs.T if cfg.cql_importance_sample else None  # [B, N]

    def loss_fn(params: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
        q_data = state.critic.apply_fn(params, critic_obs, data_action)  # [Q, B]
        q_random = jnp.moveaxis(state.critic.apply_fn(params, obs_n, random_action), 1, 2)  # [Q, B, N]
        q_policy = jnp.moveaxis(state.critic.apply_fn(params, obs_n, policy_action), 1, 2)
        td = losses.critic_loss(q_data, target)
        if cfg.warmstart == "calql":
            reg = losses.calql_loss(
                q_data,
                q_random,
                q_policy,
                batch["mc_return"],
                cfg.cql_alpha,
                random_log_density,
                policy_log_probs,
            )
        else:
            reg = losses.cql_loss(
                q_data, q_random, q_policy, cfg.cql_alpha, random_log_density, policy_log_probs
            )
        aux = {
            "td_loss": td,
            "cql_loss": reg,
            "q_mean": jnp.mean(q_data),
            "q_random_mean": jnp.mean(q_random),
            "q_policy_mean": jnp.mean(q_policy),
        }
        return td + reg, aux

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.critic.params)
    aux.update(critic_loss=loss, target_q_mean=jnp.mean(target))
    return _apply_critic_grads(state, grads), aux


def _iql_step(
    state: ResidualSACState, batch: Mapping[str, jax.Array], xi: jax.Array
) -> tuple[ResidualSACState, dict[str, jax.Array]]:
    """IQL: V regresses an upper expectile of target Q on data actions; Q regresses r + gamma * V(s')."""
    cfg = state.config
    value = state.value
    critic_obs = _critic_obs(cfg, batch["obs"], batch["base_action"])
    action = _critic_action(cfg, batch["base_action"], batch["action"], xi)
    q_target = jnp.min(state.critic.apply_fn(state.target_critic_params, critic_obs, action), axis=0)

    def value_fn(params: Any) -> jax.Array:
        return losses.iql_expectile_loss(q_target - value.apply_fn(params, batch["obs"]), cfg.iql_expectile)

    v_loss, v_grads = jax.value_and_grad(value_fn)(value.params)
    value = value.apply_gradients(grads=v_grads)
    next_v = value.apply_fn(value.params, batch["next_obs"])
    target = jax.lax.stop_gradient(batch["reward"] + cfg.reward_bias + cfg.gamma * batch["discount"] * next_v)

    def loss_fn(params: Any) -> tuple[jax.Array, jax.Array]:
        q = state.critic.apply_fn(params, critic_obs, action)
        return losses.critic_loss(q, target), q

    (loss, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.critic.params)
    state = _apply_critic_grads(state.replace(value=value), grads)
    info = {
        "critic_loss": loss,
        "value_loss": v_loss,
        "q_mean": jnp.mean(q),
        "target_q_mean": jnp.mean(target),
    }
    return state, info


@jax.jit
def pretrain_critic(
    state: ResidualSACState, batch: Mapping[str, Any]
) -> tuple[ResidualSACState, dict[str, jax.Array]]:
    """Critic warm start on offline base successes (config.warmstart), U scanned steps per call.

    Only the critic (and V for IQL) learns; the actor stays as it is (zero residual at creation), so online
    RL starts from the base policy with a calibrated critic. `state.step` does not advance, so the xi
    schedule and the critic:actor phase start at 0 online.
    """
    cfg = state.config
    if cfg.warmstart == "none":
        raise ValueError("pretrain_critic: config.warmstart is 'none'; choose calql, cql or iql")
    required = REQUIRED_KEYS + (("mc_return",) if cfg.warmstart == "calql" else ())
    _check_batch(batch, state, required)
    state, infos = jax.lax.scan(_pretrain_step, state, _as_float32(batch))
    return state, {key: jnp.mean(value) for key, value in infos.items()}
