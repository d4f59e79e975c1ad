"""Symmetric offline/online sampling (RLPD, PLD): every batch mixes base successes with the agent's own data.

The offline buffer holds the successful base-policy rollouts for the whole run, so the critic keeps seeing
successes even while the online data are mostly failures; the online buffer holds what the residual agent
(and the base during warm-up) collected.
"""

from __future__ import annotations

import math

import numpy as np

from pld_residual.replay.buffer import Batch, ReplayBuffer


def offline_count(batch_size: int, offline_fraction: float) -> int:
    """Offline samples per batch: `batch_size * offline_fraction` rounded half up.

    Half up (not Python's round-half-to-even) so that odd batches behave the same for every size: with 0.5,
    batch 7 gives 4 offline + 3 online, batch 5 gives 3 + 2, batch 1 gives 1 + 0.
    """
    return math.floor(batch_size * offline_fraction + 0.5)


def concat_batches(first: Batch, second: Batch, axis: int) -> Batch:
    """Concatenate two batches with the same keys (nested dicts included) along `axis`."""
    out: Batch = {}
    for key, value in first.items():
        other = second[key]
        out[key] = (
            concat_batches(value, other, axis)
            if isinstance(value, dict)
            else np.concatenate([value, other], axis=axis)
        )
    return out


class HybridSampler:
    """Draws exactly `offline_count(B, offline_fraction)` transitions from `offline`, the rest from `online`.

    Fallbacks, so training can start before the agent has finished an episode: while the online buffer is
    empty, the whole batch comes from offline. An empty offline buffer is an error unless
    `offline_fraction` is 0 (PLD always has base successes to learn from; an empty one is a setup bug).
    Batches put offline samples first; `is_offline` (bool [B]) says which is which.
    """

    def __init__(self, offline: ReplayBuffer, online: ReplayBuffer, offline_fraction: float = 0.5) -> None:
        if not 0.0 <= offline_fraction <= 1.0:
            raise ValueError(f"offline_fraction must be in [0, 1], got {offline_fraction}")
        for attribute in ("spec", "extras_spec", "action_dim", "gamma", "reward_bias", "n_step"):
            if getattr(offline, attribute) != getattr(online, attribute):
                raise ValueError(
                    f"offline and online buffers differ in {attribute}: "
                    f"{getattr(offline, attribute)!r} vs {getattr(online, attribute)!r}"
                )
        self.offline = offline
        self.online = online
        self.offline_fraction = float(offline_fraction)

    def split(self, batch_size: int) -> tuple[int, int]:
        """(offline, online) sample counts for one batch, given what the buffers hold right now."""
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch size must be a positive integer, got {batch_size}")
        if len(self.online) == 0:
            if len(self.offline) == 0:
                raise ValueError("HybridSampler: both buffers are empty; nothing to sample yet")
            return batch_size, 0
        n_offline = offline_count(batch_size, self.offline_fraction)
        if n_offline > 0 and len(self.offline) == 0:
            raise ValueError(
                "HybridSampler: the offline buffer is empty; load the base-policy successes first "
                "(or set offline_fraction=0)"
            )
        return n_offline, batch_size - n_offline

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """One mixed batch ([B, ...], the keys of `ReplayBuffer.sample`) plus `is_offline` bool [B]."""
        n_offline, n_online = self.split(batch_size)
        parts = []
        if n_offline:
            parts.append(self.offline.sample(n_offline, rng))
        if n_online:
            parts.append(self.online.sample(n_online, rng))
        batch = parts[0] if len(parts) == 1 else concat_batches(parts[0], parts[1], axis=0)
        batch["is_offline"] = np.arange(batch_size) < n_offline
        return batch

    def sample_many(self, n: int, batch_size: int, rng: np.random.Generator) -> Batch:
        """`n` mixed batches stacked ([n, B, ...]), each with the same split; `is_offline` bool [n, B]."""
        n_offline, n_online = self.split(batch_size)
        parts = []
        if n_offline:
            parts.append(self.offline.sample_many(n, n_offline, rng))
        if n_online:
            parts.append(self.online.sample_many(n, n_online, rng))
        batch = parts[0] if len(parts) == 1 else concat_batches(parts[0], parts[1], axis=1)
        batch["is_offline"] = np.tile(np.arange(batch_size) < n_offline, (n, 1))
        return batch
