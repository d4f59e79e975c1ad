"""The two action heads. Both work on normalised actions (each dimension divided by its limit, so the
valid range is [-1, 1]) and are conditioned on the trunk's feature vector.

- `FlowHead` (pi0-style flow matching): x_t = t * noise + (1 - t) * chunk, the network predicts the
  velocity u = noise - chunk; inference integrates dx/dt from t = 1 (noise) to t = 0 with Euler steps.
- `TokenHead` (OpenVLA-style): each action dimension is one of `bins` uniform tokens over [-1, 1]; a GRU
  predicts the H * 7 tokens one after another (dimension by dimension, step by step), greedy at inference.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTION_DIM = 7


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] ([B] -> [B, dim])."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(1000.0) / max(half - 1, 1)))
    angles = t[:, None] * 1000.0 * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(nn.functional.silu(self.fc1(self.norm(x))))


class FlowHead(nn.Module):
    """Velocity field v(x_t, t | features) over a whole flattened chunk [B, H*7]."""

    def __init__(self, feature_dim: int, horizon: int, hidden: int, layers: int, time_dim: int) -> None:
        super().__init__()
        self.horizon, self.time_dim = horizon, time_dim
        size = horizon * ACTION_DIM
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(size + feature_dim, hidden)
        self.blocks = nn.ModuleList([ResidualBlock(hidden) for _ in range(layers)])
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, size)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        time = self.time_mlp(time_embedding(t, self.time_dim))
        h = self.inp(torch.cat([x.flatten(1), features], dim=1)) + time
        for block in self.blocks:
            h = block(h)
        return self.out(self.out_norm(h)).view(-1, self.horizon, ACTION_DIM)

    def loss(
        self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Masked flow-matching MSE; t ~ Beta(1.5, 1) (more weight near the noisy end, as in pi0)."""
        batch = target.shape[0]
        noise = torch.randn(target.shape, generator=generator)
        # Beta(1.5, 1) by its inverse CDF u ** (1 / 1.5), so the seeded generator drives it
        t = torch.rand(batch, generator=generator).pow(1.0 / 1.5) * 0.999 + 0.001
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * target
        error = (self.velocity(x_t, t, features) - (noise - target)).pow(2).mean(-1)
        return (error * mask).sum() / mask.sum().clamp(min=1)

    def sample(self, features: torch.Tensor, steps: int, noise: torch.Tensor) -> torch.Tensor:
        """Euler integration from t = 1 (the given noise) to t = 0; returns normalised chunks."""
        x, dt = noise, 1.0 / steps
        for i in range(steps):
            t = torch.full((x.shape[0],), 1.0 - i * dt)
            x = x - dt * self.velocity(x, t, features)
        return x


class TokenHead(nn.Module):
    """Autoregressive GRU over the H*7 action tokens of a chunk."""

    def __init__(
        self, feature_dim: int, horizon: int, bins: int, hidden: int, embed: int, label_sigma: float = 0.0
    ) -> None:
        super().__init__()
        self.horizon, self.bins, self.label_sigma = horizon, bins, label_sigma
        self.length = horizon * ACTION_DIM
        self.token_embed = nn.Embedding(bins + 1, embed)  # index `bins` is the start token
        self.position_embed = nn.Embedding(self.length, embed)
        self.cond = nn.Linear(feature_dim, embed)
        self.init_hidden = nn.Linear(feature_dim, hidden)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, bins)

    def tokenize(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised actions [B, H, 7] -> token ids [B, H*7] (uniform bins over [-1, 1])."""
        return self._bin_of(actions).flatten(1)

    def _bin_of(self, values: torch.Tensor) -> torch.Tensor:
        """Normalised values -> the ids of the uniform bins over [-1, 1] they fall in (same shape)."""
        return ((values.clamp(-1, 1) + 1) * 0.5 * self.bins).long().clamp(0, self.bins - 1)

    def _bin_centres(self) -> torch.Tensor:
        return (torch.arange(self.bins, dtype=torch.float32) + 0.5) / self.bins * 2 - 1

    def _inputs(self, previous: torch.Tensor, positions: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.token_embed(previous) + self.position_embed(positions) + cond

    def logits(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, L, bins] for target tokens [B, L]."""
        batch = tokens.shape[0]
        start = torch.full((batch, 1), self.bins, dtype=torch.long)
        previous = torch.cat([start, tokens[:, :-1]], dim=1)
        positions = torch.arange(self.length)[None, :].expand(batch, -1)
        inputs = self._inputs(previous, positions, self.cond(features)[:, None, :])
        hidden0 = torch.tanh(self.init_hidden(features))[None]
        out, _ = self.gru(inputs, hidden0)
        return self.out(out)

    def loss(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked KL(label distribution || predicted) per token (mask [B, H] covers the 7 tokens of each
        valid step). One-hot labels (`label_sigma` 0) make this the plain cross-entropy."""
        tokens = self.tokenize(target)
        logits = self.logits(features, tokens).reshape(-1, self.bins)
        log_probs = torch.log_softmax(logits, dim=-1)
        if self.label_sigma > 0:
            labels = self.soft_labels(target.reshape(-1))
            per_token = (labels * (torch.log(labels.clamp(min=1e-12)) - log_probs)).sum(dim=-1)
        else:
            per_token = -log_probs.gather(1, tokens.reshape(-1, 1))[:, 0]
        weights = mask.repeat_interleave(ACTION_DIM, dim=1).reshape(-1).float()
        return (per_token * weights).sum() / weights.sum().clamp(min=1)

    def soft_labels(self, values: torch.Tensor) -> torch.Tensor:
        """Gaussian label distributions over the bins [N, bins], centred on the normalised values [N]
        with a standard deviation of `label_sigma` bins (HL-Gauss, Farebrother et al. 2024). Neighbouring
        bins share the credit, so the head learns that bins are ordered instead of 256 unrelated
        classes, and the median decodes more precisely from the same data."""
        width = 2.0 / self.bins
        logits = (
            -0.5
            * ((self._bin_centres()[None] - values.clamp(-1, 1)[:, None]) / (self.label_sigma * width)) ** 2
        )
        return torch.softmax(logits, dim=-1)

    def generate(self, features: torch.Tensor, decoding: str = "greedy") -> torch.Tensor:
        """Decode one token at a time; returns normalised chunks [B, H, 7].

        `greedy`: the most likely bin (its centre). `mean`: the expected bin centre under the token's
        distribution, and the bin nearest to it is fed to the next step. `median`: the bin where the
        cumulative probability reaches one half. Where the data put part of the mass on the action limit
        (a saturated expert) the most likely bin is the limit itself, so greedy decoding keeps full speed
        where the expert slows down; the mean is pulled towards 0 by a split mass; the median follows it."""
        batch = features.shape[0]
        cond = self.cond(features)
        hidden = torch.tanh(self.init_hidden(features))[None]
        previous = torch.full((batch,), self.bins, dtype=torch.long)
        centres = self._bin_centres()
        values = []
        for i in range(self.length):
            position = torch.full((batch,), i, dtype=torch.long)
            step_in = self._inputs(previous, position, cond)[:, None, :]
            out, hidden = self.gru(step_in, hidden)
            logits = self.out(out[:, 0])
            if decoding == "mean":
                value = torch.softmax(logits, dim=-1) @ centres
                previous = self._bin_of(value)
            elif decoding == "median":
                cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1)
                previous = (cdf < 0.5).sum(dim=-1).clamp(max=self.bins - 1)
                value = centres[previous]
            else:
                previous = logits.argmax(dim=-1)
                value = centres[previous]
            values.append(value)
        return torch.stack(values, dim=1).view(-1, self.horizon, ACTION_DIM)
