"""Learner: scanned updates run and learn, the critic:actor ratio holds, warm starts run, bad batches fail."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pld_residual.agent import learner
from pld_residual.agent.combine import combine
from pld_residual.agent.config import ResidualSACConfig
from pld_residual.agent.policy import ResidualPolicy


def _finite(info: dict) -> bool:
    return all(np.isfinite(float(value)) for value in info.values())


def test_update_runs_counts_steps_and_returns_finite_info(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    state = learner.create(tiny_config, obs_dim, seed=0)
    new_state, info = learner.update(state, make_batch())
    assert _finite(info)
    for key in ("critic_loss", "q_mean", "target_q_mean", "actor_loss", "temperature", "entropy", "xi"):
        assert key in info
    assert int(new_state.step) == 25 and int(new_state.critic.step) == 25
    # critic every step, actor + temperature every 2nd: steps 2, 4, ..., 24 of 25
    assert int(info["actor_updates"]) == 12 and int(new_state.actor.step) == 12
    assert int(new_state.temperature.step) == 12
    assert int(state.step) == 0  # the input state is untouched (immutable)
    assert float(info["xi"]) == pytest.approx(0.1 + 0.4 * 12 / 100, abs=1e-6)  # mean over steps 0..24
    assert new_state.actor.params is not state.actor.params


def test_a_few_hundred_updates_reduce_the_critic_loss(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    state = learner.create(tiny_config, obs_dim, seed=1)
    batch = make_batch(seed=1)  # reward = tanh(obs[0]) at terminals: the Q target is fixed
    losses = []
    for _ in range(12):  # 300 gradient steps
        state, info = learner.update(state, batch)
        losses.append(float(info["critic_loss"]))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses
    # soft target follows the critic but lags it
    critic = jax.tree.leaves(state.critic.params)[0]
    target = jax.tree.leaves(state.target_critic_params)[0]
    assert not np.array_equal(np.asarray(critic), np.asarray(target))


def test_current_xi_follows_the_schedule(tiny_config: ResidualSACConfig, obs_dim: int) -> None:
    state = learner.create(tiny_config, obs_dim)
    assert learner.current_xi(state) == pytest.approx(0.1)
    assert learner.current_xi(state.replace(step=np.int32(50))) == pytest.approx(0.3)


def test_bad_batches_fail_with_a_message(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    state = learner.create(tiny_config, obs_dim)
    batch = make_batch()
    with pytest.raises(ValueError, match="next_base_action"):
        learner.update(state, {k: v for k, v in batch.items() if k != "next_base_action"})
    with pytest.raises(ValueError, match=r"batch\['obs'\]"):
        learner.update(state, {**batch, "obs": batch["obs"][..., :-1]})
    with pytest.raises(ValueError, match="mc_return"):
        learner.pretrain_critic(state, batch)  # Cal-QL needs Monte-Carlo returns
    with pytest.raises(ValueError, match="action_dim"):
        learner.create(tiny_config, obs_dim, action_dim=6)


def test_calql_warm_start_moves_only_the_critic(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    state = learner.create(tiny_config, obs_dim)
    new_state, info = learner.pretrain_critic(state, make_batch(updates=2, mc=True))
    assert _finite(info) and {"td_loss", "cql_loss", "q_policy_mean", "q_random_mean"} <= set(info)
    assert int(new_state.step) == 0  # the online schedule has not started
    for before, after in zip(
        jax.tree.leaves(state.actor.params), jax.tree.leaves(new_state.actor.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    changed = jax.tree.leaves(
        jax.tree.map(lambda a, b: bool(np.any(a != b)), state.critic.params, new_state.critic.params)
    )
    assert all(changed)


@pytest.mark.slow
@pytest.mark.parametrize("warmstart", ["cql", "iql"])
def test_other_warm_starts_run(warmstart: str, obs_dim: int, make_batch: Callable) -> None:
    cfg = ResidualSACConfig(hidden=16, batch_size=16, warmstart=warmstart, otf_samples=2, cql_num_samples=2)
    state = learner.create(cfg, obs_dim)
    new_state, info = learner.pretrain_critic(state, make_batch(updates=2))
    assert _finite(info) and float(info["critic_loss"]) > 0
    if warmstart == "iql":
        assert "value_loss" in info and int(new_state.value.step) == 2
    with pytest.raises(ValueError, match="warmstart"):
        learner.pretrain_critic(learner.create(cfg.replace(warmstart="none"), obs_dim), make_batch(updates=1))


def test_critic_sees_base_reads_the_base_action(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    """With `critic_sees_base` the critic's input is obs + base action + action, and Q depends on the base."""
    config = tiny_config.replace(critic_sees_base=True)
    state = learner.create(config, obs_dim, seed=0)
    first_kernel = state.critic.params["params"]["ensemble"]["MLP_0"]["Dense_0"]["kernel"]
    assert first_kernel.shape[-2] == obs_dim + 2 * config.action_dim
    state, info = learner.update(state, make_batch())
    assert _finite(info)
    obs = np.zeros((1, obs_dim), np.float32)
    action = np.zeros((1, config.action_dim), np.float32)
    q = [
        state.critic.apply_fn(state.critic.params, learner._critic_obs(config, obs, action + shift), action)
        for shift in (0.0, 0.5)
    ]
    assert not np.allclose(np.asarray(q[0]), np.asarray(q[1]))
    plain = learner.create(tiny_config, obs_dim, seed=0)
    plain_kernel = plain.critic.params["params"]["ensemble"]["MLP_0"]["Dense_0"]["kernel"]
    assert plain_kernel.shape[-2] == obs_dim + config.action_dim


def test_residual_axes_leave_the_other_axes_to_the_base(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    """A residual limited to axes (0, 1) learns there and nowhere else: the other axes execute the base."""
    config = tiny_config.replace(residual_axes=(0, 1))
    state = learner.create(config, obs_dim, seed=0)
    state, info = learner.update(state, make_batch())
    assert _finite(info)
    policy = ResidualPolicy.from_learner(state)
    obs = np.random.default_rng(1).standard_normal((8, obs_dim)).astype(np.float32)
    base = np.full((8, config.action_dim), 0.2, np.float32)
    for deterministic in (True, False):
        delta = policy.act(obs, base, deterministic=deterministic, seed=0)
        assert np.all(delta[:, 2:] == 0.0)
        assert np.any(delta[:, :2] != 0.0)  # the kept axes did move off zero
        executed = combine(base, delta, 0.5)
        np.testing.assert_array_equal(executed[:, 2:], base[:, 2:])


def test_residual_critic_action_reads_the_rescaled_residual(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    """critic_action="residual": Q reads (obs, a_base) and (a - a_base) / xi; base-only steps read 0."""
    config = tiny_config.replace(critic_action="residual")
    base = np.array([[0.2, -0.4, 0.0, 0.0, 0.0, 0.0, 1.0]], np.float32)
    action = np.array([[0.25, -0.45, 0.0, 0.01, 0.0, 0.0, 1.0]], np.float32)
    by_hand = np.array([[0.5, -0.5, 0.0, 0.1, 0.0, 0.0, 0.0]], np.float32)  # differences / 0.1
    np.testing.assert_allclose(
        np.asarray(learner._critic_action(config, base, action, 0.1)), by_hand, atol=1e-6
    )
    assert not np.any(np.asarray(learner._critic_action(config, base, base, 0.1)))
    np.testing.assert_array_equal(np.asarray(learner._critic_action(tiny_config, base, action, 0.1)), action)
    # unguided methods (zero base, xi 1) read the action itself
    np.testing.assert_allclose(np.asarray(learner._critic_action(config, 0 * base, action, 1.0)), action)
    state = learner.create(config, obs_dim, seed=0)
    kernel = state.critic.params["params"]["ensemble"]["MLP_0"]["Dense_0"]["kernel"]
    assert kernel.shape[-2] == obs_dim + 2 * config.action_dim
    state, info = learner.update(state, make_batch())
    assert _finite(info) and int(state.step) == config.updates_per_call
    _pretrained, info = learner.pretrain_critic(
        learner.create(config, obs_dim), make_batch(updates=2, mc=True)
    )
    assert _finite(info)


def test_target_qs_takes_the_min_over_a_random_subset_of_heads(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    """REDQ: the target is the min over `target_qs` random heads; all heads reproduce the full min."""
    config = tiny_config.replace(num_qs=5, target_qs=2)
    state = learner.create(config, obs_dim, seed=0)
    batch = {k: jnp.asarray(v[0]) for k, v in make_batch(seed=3).items()}
    batch["discount"] = jnp.ones_like(batch["discount"])  # bootstrap, so the heads matter
    xi = jnp.float32(0.1)

    def target_with(target_qs, seed):
        variant = state.replace(config=config.replace(target_qs=target_qs))
        return np.asarray(learner._next_state_target(variant, batch, xi, jax.random.PRNGKey(seed)))

    np.testing.assert_allclose(target_with(5, 0), target_with(None, 0), rtol=1e-6)
    raised = False
    for seed in range(8):  # the same key draws the same next residuals, so only the heads differ
        subset, full_min = target_with(2, seed), target_with(None, seed)
        assert np.all(subset >= full_min - 1e-6)  # a min over fewer heads
        raised |= bool(np.any(subset > full_min + 1e-6))
    assert raised
    state, info = learner.update(state, make_batch())
    assert _finite(info)
    with pytest.raises(ValueError, match="target_qs"):
        tiny_config.replace(num_qs=2, target_qs=3)


def test_self_imitation_copies_residuals_of_transitions_that_beat_q(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    """Data residual 0.8 on x with return 1 (above Q ~ 0): the actor moves there with SIL, not without."""
    config = tiny_config.replace(residual_axes=(0, 1), actor_lr=3e-3)  # fewer steps to get there

    def batch(seed: int) -> dict[str, np.ndarray]:
        out = make_batch(seed=seed, mc=True)
        out["action"] = out["base_action"] + 0.1 * np.array([0.8, 0, 0, 0, 0, 0, 0], np.float32)
        out["mc_return"] = np.ones_like(out["reward"])
        out["reward"] = np.zeros_like(out["reward"])  # Q stays ~0: only self-imitation has a signal
        out["xi"] = np.full(out["reward"].shape[:1], 0.1, np.float32)
        return out

    obs = np.random.default_rng(5).standard_normal((64, obs_dim)).astype(np.float32)
    base = np.zeros((64, config.action_dim), np.float32)
    mean_x = {}
    for weight in (0.0, 1.0):
        state = learner.create(config.replace(self_imitation=weight), obs_dim, seed=0)
        for seed in range(8):
            state, info = learner.update(state, batch(seed))
        assert _finite(info)
        delta = ResidualPolicy.from_learner(state).act(obs, base, deterministic=True)
        assert np.all(delta[:, 2:] == 0.0)  # masked axes are neither imitated nor moved
        mean_x[weight] = float(np.mean(delta[:, 0]))
    assert mean_x[1.0] > 0.4 and abs(mean_x[0.0]) < 0.2, mean_x
    no_returns = {k: v for k, v in batch(0).items() if k != "mc_return"}
    with pytest.raises(ValueError, match="mc_return"):
        learner.update(learner.create(config.replace(self_imitation=1.0), obs_dim), no_returns)


def _distance(a, b) -> float:
    return float(sum(np.sum((np.asarray(x) - np.asarray(y)) ** 2) for x, y in zip(a, b, strict=True)))


def test_actor_ema_is_the_deployed_policy_and_lags_the_actor(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable
) -> None:
    """decay 0 tracks the actor exactly; 0.95 lies between the initial and the trained actor."""
    for decay in (0.0, 0.95):
        config = tiny_config.replace(actor_ema=decay)
        start = learner.create(config, obs_dim, seed=0)
        state, info = learner.update(start, make_batch())
        assert _finite(info)
        init = jax.tree.leaves(start.actor.params)
        actor = jax.tree.leaves(state.actor.params)
        ema = jax.tree.leaves(learner.policy_params(state))
        deployed = jax.tree.leaves(ResidualPolicy.from_learner(state).params)
        assert _distance(deployed, ema) == 0.0  # evaluation and the saved policy use the average
        if decay == 0.0:
            assert _distance(ema, actor) == 0.0
        else:
            assert 0.0 < _distance(ema, init) < _distance(actor, init)
    plain, _ = learner.update(learner.create(tiny_config, obs_dim, seed=0), make_batch())
    assert plain.actor_ema_params is None
    assert _distance(jax.tree.leaves(learner.policy_params(plain)), jax.tree.leaves(plain.actor.params)) == 0
    with pytest.raises(ValueError, match="actor_ema"):
        tiny_config.replace(actor_ema=1.0)
