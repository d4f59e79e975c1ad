"""Gradient updates per second of our residual SAC next to stable-baselines3 SAC, same sizes, same data.

Both sides sample their minibatches from a host replay buffer of random data on every update (ours:
numpy indexing into `[U, B, ...]` then one `update` dispatch; SB3: its own `ReplayBuffer.sample`), so
the figures include what a real learning loop pays. Compile time (ours) and the first call (both) are
excluded. One "update" is one critic step; actor steps follow each side's schedule (ours:
`critic_actor_ratio`, SB3 SAC: every step), so `like_for_like` also measures ours with ratio 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from pld_residual.agent.config import ResidualSACConfig

DEFAULT_OBS_DIM = 143  # small VLA feature_dim 128 + proprioception 15
BUFFER_SIZE = 20_000


def _random_buffer(obs_dim: int, action_dim: int, size: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.standard_normal((size, obs_dim), np.float32),
        "base_action": rng.uniform(-1, 1, (size, action_dim)).astype(np.float32),
        "action": rng.uniform(-1, 1, (size, action_dim)).astype(np.float32),
        "reward": (rng.random(size) < 0.1).astype(np.float32),
        "discount": np.where(rng.random(size) < 0.01, 0.0, 1.0).astype(np.float32),
        "next_obs": rng.standard_normal((size, obs_dim), np.float32),
        "next_base_action": rng.uniform(-1, 1, (size, action_dim)).astype(np.float32),
    }


def _sample(buffer: dict[str, np.ndarray], rng: np.random.Generator, updates: int, batch: int) -> dict:
    idx = rng.integers(0, len(buffer["reward"]), size=(updates, batch))
    return {key: value[idx] for key, value in buffer.items()}


def measure_updates_per_second(
    config: ResidualSACConfig, obs_dim: int = DEFAULT_OBS_DIM, seconds: float = 10.0, seed: int = 0
) -> dict[str, Any]:
    """Our jitted `update` (lax.scan of `updates_per_call` steps per dispatch), compile excluded."""
    import jax

    from pld_residual.agent import learner

    buffer = _random_buffer(obs_dim, config.action_dim, BUFFER_SIZE, seed)
    rng = np.random.default_rng(seed)
    state = learner.create(config, obs_dim, seed=seed)
    start = time.perf_counter()
    state, info = learner.update(state, _sample(buffer, rng, config.updates_per_call, config.batch_size))
    jax.block_until_ready(info)
    compile_s = time.perf_counter() - start

    calls, start = 0, time.perf_counter()
    while True:
        state, info = learner.update(state, _sample(buffer, rng, config.updates_per_call, config.batch_size))
        calls += 1
        if calls % 4 == 0 or time.perf_counter() - start >= seconds:
            jax.block_until_ready(info)  # dispatch is async: only count finished work
            if time.perf_counter() - start >= seconds:
                break
    elapsed = time.perf_counter() - start
    updates = calls * config.updates_per_call
    return {
        "updates_per_s": round(updates / elapsed, 1),
        "updates": updates,
        "seconds": round(elapsed, 2),
        "compile_s": round(compile_s, 2),
        "critic_loss_finite": bool(np.isfinite(float(info["critic_loss"]))),
    }


def measure_sb3_updates_per_second(
    config: ResidualSACConfig,
    obs_dim: int = DEFAULT_OBS_DIM,
    seconds: float = 10.0,
    seed: int = 0,
    threads: int = 2,
    gradient_steps: int | None = None,
) -> dict[str, Any]:
    """stable-baselines3 SAC with the same MLP sizes and batch, `SAC.train` on a random replay buffer.

    The observation is obs + base action (what our actor reads), so the actor input widths match.
    """
    import stable_baselines3
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import Logger

    torch.set_num_threads(threads)
    width = obs_dim + config.action_dim
    env = _box_env(width, config.action_dim)
    model = SAC(
        "MlpPolicy",
        env,
        learning_rate=config.critic_lr,
        buffer_size=BUFFER_SIZE,
        learning_starts=0,
        batch_size=config.batch_size,
        tau=config.tau,
        gamma=config.gamma,
        policy_kwargs={"net_arch": [config.hidden] * config.critic_layers, "n_critics": config.num_qs},
        device="cpu",
        seed=seed,
        verbose=0,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))
    data = _random_buffer(obs_dim, config.action_dim, BUFFER_SIZE, seed)
    buffer = model.replay_buffer
    buffer.observations[:, 0] = np.concatenate([data["obs"], data["base_action"]], axis=1)
    buffer.next_observations[:, 0] = np.concatenate([data["next_obs"], data["next_base_action"]], axis=1)
    buffer.actions[:, 0] = data["action"]
    buffer.rewards[:, 0] = data["reward"]
    buffer.dones[:, 0] = 1.0 - data["discount"]
    buffer.full, buffer.pos = True, 0

    steps = gradient_steps or max(config.updates_per_call, 10)
    model.train(gradient_steps=steps, batch_size=config.batch_size)  # warm-up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.train(gradient_steps=steps, batch_size=config.batch_size)
        calls += 1
    elapsed = time.perf_counter() - start
    return {
        "updates_per_s": round(calls * steps / elapsed, 1),
        "updates": calls * steps,
        "seconds": round(elapsed, 2),
        "torch_threads": torch.get_num_threads(),
        "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__},
    }


def _box_env(obs_dim: int, action_dim: int) -> Any:
    """An env with the right spaces; SB3 only reads its spaces here (nothing steps it)."""
    import gymnasium as gym

    class BoxEnv(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
            super().reset(seed=seed)
            return np.zeros(obs_dim, np.float32), {}

        def step(self, action: np.ndarray) -> tuple:
            return np.zeros(obs_dim, np.float32), 0.0, False, False, {}

    return BoxEnv()


def compare_with_sb3(
    config: ResidualSACConfig,
    obs_dim: int = DEFAULT_OBS_DIM,
    seconds: float = 10.0,
    seed: int = 0,
    like_for_like: bool = True,
    torch_threads: int = 2,
) -> dict[str, Any]:
    """Ours (this config), SB3 SAC, and optionally ours with critic_actor_ratio=1; with their ratios."""
    ours = measure_updates_per_second(config, obs_dim, seconds, seed)
    sb3 = measure_sb3_updates_per_second(config, obs_dim, seconds, seed, threads=torch_threads)
    result: dict[str, Any] = {
        "updates_per_s": ours["updates_per_s"],
        "sb3_updates_per_s": sb3["updates_per_s"],
        "ratio_vs_sb3": round(ours["updates_per_s"] / sb3["updates_per_s"], 2),
        "ours": ours,
        "sb3": sb3,
    }
    if like_for_like and config.critic_actor_ratio != 1:
        same = measure_updates_per_second(config.replace(critic_actor_ratio=1), obs_dim, seconds, seed)
        result["updates_per_s_ratio1"] = same["updates_per_s"]
        result["ratio_vs_sb3_ratio1"] = round(same["updates_per_s"] / sb3["updates_per_s"], 2)
    result["config"] = {
        "obs_dim": obs_dim,
        "action_dim": config.action_dim,
        "hidden": [config.hidden] * config.critic_layers,
        "batch_size": config.batch_size,
        "num_qs": config.num_qs,
        "critic_actor_ratio": config.critic_actor_ratio,
        "updates_per_call": config.updates_per_call,
        "otf_samples": config.otf_samples,
        "seconds_per_measurement": seconds,
    }
    result["machine"] = {"cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the updates/s measurement (`pld bench rl --updates-only`)."""
    defaults = ResidualSACConfig()
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement (default: %(default)s)")
    parser.add_argument(
        "--obs-dim", type=int, default=DEFAULT_OBS_DIM, help="observation width (default: %(default)s)"
    )
    parser.add_argument(
        "--hidden", type=int, default=defaults.hidden, help="MLP width (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default: %(default)s)")
    parser.add_argument(
        "--updates-per-call",
        type=int,
        default=10,
        help="our gradient steps per jitted call = SB3's gradient_steps per train() (default: %(default)s)",
    )
    parser.add_argument(
        "--critic-actor-ratio", type=int, default=defaults.critic_actor_ratio, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--otf-samples", type=int, default=defaults.otf_samples, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=2, help="SB3's torch threads; JAX uses all cores (default: 2)"
    )
    parser.add_argument(
        "--no-like-for-like",
        action="store_true",
        help="skip measuring ours also with critic_actor_ratio=1 (SB3 updates the actor every step)",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON document")


def run(args: argparse.Namespace) -> int:
    """`pld bench rl --updates-only`: updates/s, ours against SB3, one JSON document."""
    try:
        config = ResidualSACConfig(
            hidden=args.hidden,
            batch_size=args.batch_size,
            updates_per_call=args.updates_per_call,
            critic_actor_ratio=args.critic_actor_ratio,
            otf_samples=args.otf_samples,
        )
    except ValueError as exc:
        print(f"pld bench rl: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        print(f"pld bench rl: updates/s, ours vs stable-baselines3 SAC, {args.seconds:g} s per measurement")
    result = compare_with_sb3(
        config,
        args.obs_dim,
        args.seconds,
        like_for_like=not args.no_like_for_like,
        torch_threads=args.torch_threads,
    )
    print(json.dumps(result, indent=2))
    return 0
