"""Success rate of the scripted experts over seeded episodes (they stand in for human demonstrations)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ExpertEvalConfig:
    task: str = "pick_cube"
    episodes: int = 50
    first_seed: int = 0
    noise: float = 0.0
    hesitation: float = 0.0

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError("episodes must be at least 1")


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (sensible at 0 % and 100 %, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def evaluate_expert(
    cfg: ExpertEvalConfig, on_episode: Callable[[int, bool], None] | None = None
) -> dict[str, Any]:
    import pld_sim
    from pld_sim.experts import ExpertConfig, make_expert

    env = pld_sim.make(cfg.task, render_images=False)
    successes, lengths, failed_seeds, tracking = 0, [], [], []
    for episode in range(cfg.episodes):
        seed = cfg.first_seed + episode
        obs, info = env.reset(seed=seed)
        expert = make_expert(env, ExpertConfig(noise=cfg.noise, hesitation=cfg.hesitation), seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            tracking.append(info["ik_tracking_error_m"])
        successes += bool(info["success"])
        lengths.append(env.step_count)
        if not info["success"]:
            failed_seeds.append(seed)
        if on_episode is not None:
            on_episode(episode, bool(info["success"]))
    low, high = wilson_interval(successes, cfg.episodes)
    return {
        "task": cfg.task,
        "episodes": cfg.episodes,
        "noise": cfg.noise,
        "hesitation": cfg.hesitation,
        "successes": successes,
        "success_rate": successes / cfg.episodes,
        "success_rate_ci95": [round(low, 3), round(high, 3)],
        "mean_length_steps": float(np.mean(lengths)),
        "failed_seeds": failed_seeds,
        # commanded TCP target vs measured TCP at the end of each control step (includes motion lag)
        "ik_tracking_error_m_mean": round(float(np.mean(tracking)), 4),
        "ik_tracking_error_m_p95": round(float(np.percentile(tracking, 95)), 4),
    }
