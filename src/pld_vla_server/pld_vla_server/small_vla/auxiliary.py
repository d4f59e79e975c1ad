"""Auxiliary state regression for pretraining in simulation: the features must also predict the objects'
pose (the task's privileged state), which only the simulator knows.

Why: most expert actions are clipped at the action limit (the hand moves at full speed until it is close),
so the action loss says little about *where exactly* an object is, and a small-data policy stopped 1-3 cm
short of the peg. A linear probe on the feature vector, trained jointly, gives every frame a dense
localisation target (package README, "Tuning"). The probe is a training-time module only: it is not part
of the saved model, and episodes without privileged state (real-robot data) simply do not contribute.

Targets are standardised per task and dimension (tasks have different state layouts, padded to the
longest); dimensions that are constant within a task (object sizes) are masked out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pld_vla_server.dataset import Episode

CONSTANT_STD = 1e-6  # a dimension with a smaller spread within a task carries no information


def state_targets(episodes: list[Episode]) -> tuple[np.ndarray, np.ndarray] | None:
    """Standardised privileged state per sample [N, D] and its mask [N, D]; None when no episode has it.

    Rows follow the episodes' steps in order (the layout of `prepare_data`)."""
    sizes = [e.privileged.shape[1] for e in episodes if e.privileged is not None]
    if not sizes:
        return None
    width = max(sizes)
    stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for task in sorted({e.task for e in episodes if e.privileged is not None}):
        rows = np.concatenate([e.privileged for e in episodes if e.task == task and e.privileged is not None])
        stats[task] = (rows.mean(0), rows.std(0))
    targets, masks = [], []
    for episode in episodes:
        target = np.zeros((len(episode), width), dtype=np.float32)
        mask = np.zeros((len(episode), width), dtype=np.float32)
        if episode.privileged is not None:
            mean, std = stats[episode.task]
            informative = std > CONSTANT_STD
            dims = episode.privileged.shape[1]
            target[:, :dims] = np.where(informative, (episode.privileged - mean) / np.maximum(std, 1e-9), 0.0)
            mask[:, :dims] = informative
        targets.append(target)
        masks.append(mask)
    return np.concatenate(targets), np.concatenate(masks)


class StateProbe(nn.Module):
    """features [B, F] -> standardised state [B, D]; linear, so the features must hold the state plainly."""

    def __init__(self, feature_dim: int, state_dim: int, seed: int) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.linear = nn.Linear(feature_dim, state_dim)

    def loss(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the unmasked entries (0 for a batch without any)."""
        error = (self.linear(features) - target) ** 2 * mask
        return error.sum() / mask.sum().clamp(min=1.0)
