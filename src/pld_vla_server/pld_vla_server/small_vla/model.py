"""`SmallVLA`: the network. Cameras, proprioception and the instruction embedding are fused by an MLP
trunk into a compact feature vector (`feature_dim`, LayerNorm'd; also what the residual policy sees),
and an action head maps that vector to a chunk of normalised actions.

Module names matter: `TRUNK_MODULES` are frozen in `head` fine-tuning, `head` is the action head.
"""

from __future__ import annotations

import torch
from torch import nn

from pld_vla_server.small_vla.config import LANGUAGE_DIM, SmallVLAConfig
from pld_vla_server.small_vla.heads import FlowHead, TokenHead
from pld_vla_server.small_vla.vision import CameraEncoder

TRUNK_MODULES = ("cameras", "proprio", "language", "fusion")


class SmallVLA(nn.Module):
    def __init__(self, config: SmallVLAConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.cameras = nn.ModuleList(
            [CameraEncoder(c.vision_size, c.vision_channels, c.vision_dim) for _ in c.cameras]
        )
        proprio_out = c.proprio_hidden if c.proprio_dim else 0
        self.proprio: nn.Module = nn.Identity()
        if c.proprio_dim:
            self.proprio = nn.Sequential(
                nn.Linear(c.proprio_inputs, c.proprio_hidden),
                nn.SiLU(),
                nn.Linear(c.proprio_hidden, c.proprio_hidden),
            )
        self.language = nn.Linear(LANGUAGE_DIM, c.language_proj)
        fused = len(c.cameras) * c.vision_dim + proprio_out + c.language_proj
        self.fusion = nn.Sequential(
            nn.Linear(fused, c.trunk_hidden),
            nn.SiLU(),
            nn.Linear(c.trunk_hidden, c.trunk_hidden),
            nn.SiLU(),
            nn.Linear(c.trunk_hidden, c.feature_dim),
            nn.LayerNorm(c.feature_dim),
        )
        if c.head == "flow":
            self.head: nn.Module = FlowHead(
                c.feature_dim, c.horizon, c.flow_hidden, c.flow_layers, c.time_embed_dim
            )
        else:
            self.head = TokenHead(
                c.feature_dim, c.horizon, c.ar_bins, c.ar_hidden, c.ar_embed, c.ar_label_sigma
            )
        # proprio normalisation, fitted on the first (pretraining) dataset and saved with the weights
        self.register_buffer("proprio_mean", torch.zeros(c.proprio_dim))
        self.register_buffer("proprio_std", torch.ones(c.proprio_dim))
        self.register_buffer("normalizer_fitted", torch.zeros((), dtype=torch.bool))

    def encode(self, images: torch.Tensor, proprio: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        """images [B, cams, 3, s, s] (uint8 or float 0..255), proprio [B, P] raw, language [B, 384]."""
        parts = [encoder(images[:, i]) for i, encoder in enumerate(self.cameras)]
        if self.config.proprio_dim:
            normalised = (proprio - self.proprio_mean) / self.proprio_std
            if self.config.proprio_indices is not None:
                normalised = normalised[:, list(self.config.proprio_indices)]
            parts.append(self.proprio(normalised))
        parts.append(self.language(language))
        return self.fusion(torch.cat(parts, dim=1))

    def loss(
        self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Training loss for normalised target chunks [B, H, 7] with validity mask [B, H]."""
        if isinstance(self.head, FlowHead):
            return self.head.loss(features, target, mask, generator)
        return self.head.loss(features, target, mask)

    def act(self, features: torch.Tensor, seed: int) -> torch.Tensor:
        """Normalised chunks [B, H, 7], a deterministic function of the observation. The flow head
        integrates from one fixed noise drawn from a generator seeded with `seed` (`flow_noise="seeded"`)
        or from zero ("zero": the centre of the learned distribution)."""
        if isinstance(self.head, FlowHead):
            shape = (1, self.config.horizon, 7)
            if self.config.flow_noise == "zero":
                noise = torch.zeros(shape)
            else:
                noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
            noise = noise.expand(features.shape[0], -1, -1)
            return self.head.sample(features, self.config.flow_steps, noise)
        return self.head.generate(features, self.config.ar_decoding)

    def trunk_parameters(self) -> list[nn.Parameter]:
        return [p for name in TRUNK_MODULES for p in getattr(self, name).parameters()]
