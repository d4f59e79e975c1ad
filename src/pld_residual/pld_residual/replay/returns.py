"""Monte-Carlo discounted returns of one finished episode (the Cal-QL lower bound on Q)."""

from __future__ import annotations

import numpy as np


def monte_carlo_returns(rewards: np.ndarray, gamma: float, reward_bias: float = 0.0) -> np.ndarray:
    """`G_t = sum_{k >= t} gamma^(k-t) * (r_k + reward_bias)` to the end of the episode, as float32.

    Nothing is bootstrapped past the last step, whether the episode terminated or was truncated: Cal-QL
    uses this as a conservative reference value, and the truncated tail is unknown. Accumulated in float64
    so long episodes do not drift.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D, got shape {rewards.shape}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    returns = np.empty_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + reward_bias + gamma * running
        returns[t] = running
    return returns.astype(np.float32)
