"""Success rate of the current agent (deterministic residual, no probing) on seeds no training run uses.

Evaluation seeds start at `EVAL_FIRST_SEED` (10 000, as `pld_vla_server.evaluation`), so every method and
every point of a curve sees the same scenes; training seeds live far above them (`train_seed`).
Success is the env's ground truth (`info["success"]`), whatever reward source trained the agent.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pld_residual.agent.policy import ResidualPolicy
from pld_residual.learning.action_space import agent_base, executed_action
from pld_residual.learning.base_env import BaseGuidedEnv

EVAL_FIRST_SEED = 10_000  # = pld_vla_server.collect_demos.EVAL_FIRST_SEED
TRAIN_FIRST_SEED = 1_000_000
OFFLINE_FIRST_SEED = 500_000
SEED_STRIDE = 10_000_000  # per run seed, so runs with different seeds never share scenes


def train_seed(run_seed: int, episode_index: int) -> int:
    """Env seed of online training episode `episode_index`."""
    return TRAIN_FIRST_SEED + SEED_STRIDE * run_seed + episode_index


def offline_seed(run_seed: int, attempt: int) -> int:
    """Env seed of base rollout `attempt` while collecting offline successes."""
    return OFFLINE_FIRST_SEED + SEED_STRIDE * run_seed + attempt


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    from pld_sim.expert_eval import wilson_interval as wilson

    return wilson(successes, n, z)


def evaluate_agent(
    env: BaseGuidedEnv,
    policy: ResidualPolicy,
    xi: float,
    guided: bool,
    episodes: int,
    first_seed: int = EVAL_FIRST_SEED,
) -> dict[str, Any]:
    """Run `episodes` seeded episodes with the deterministic agent acting from the first step."""
    start = time.perf_counter()
    outcomes = []
    for index in range(episodes):
        obs, _ = env.reset(seed=first_seed + index)
        success, steps = False, 0
        while True:
            delta = policy.act(obs.vector, agent_base(obs.base_action, guided), deterministic=True)
            _, action = executed_action(obs.base_action, delta, xi, env.scale, guided)
            obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            success = success or bool(info.get("success", False))
            if terminated or truncated:
                break
        outcomes.append({"seed": first_seed + index, "success": success, "length": steps})
    successes = sum(o["success"] for o in outcomes)
    low, high = wilson_interval(successes, episodes)
    return {
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes,
        "ci95": [round(low, 4), round(high, 4)],
        "mean_length": float(np.mean([o["length"] for o in outcomes])),
        "eval_wall_time_s": round(time.perf_counter() - start, 2),
    }
