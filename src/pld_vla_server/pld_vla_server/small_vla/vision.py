"""Camera encoder trained from scratch: integer box downsampling + a small strided CNN per camera.

Downsampling happens once, on uint8, with the same function at training and inference time, so the
training set can be stored at the small size (4x less memory) without a train/test mismatch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def downsample_images(images: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [..., S, S, 3] -> uint8 [..., 3, S/f, S/f]: rounded mean over f x f blocks, channels first."""
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    *lead, size, _, channels = images.shape
    if factor > 1:
        small = size // factor
        blocks = images.reshape(*lead, small, factor, small, factor, channels).astype(np.uint16)
        images = ((blocks.sum(axis=(-4, -2)) + factor * factor // 2) // (factor * factor)).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(images, -1, -3))


def camera_input(images: np.ndarray, window: tuple[int, int, int], vision_size: int) -> np.ndarray:
    """uint8 [..., S, S, 3] -> uint8 [..., 3, v, v]: the (top, left, size) window, box-downsampled to v."""
    top, left, size = window
    crop = images[..., top : top + size, left : left + size, :]
    return downsample_images(crop, size // vision_size)


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """DrQ-style augmentation: pad by replication and crop back at a random integer offset per image."""
    batch, channels, size, _ = images.shape
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator)
    arange = torch.arange(size)
    rows = (offsets[:, 0, None] + arange)[:, None, :, None].expand(batch, channels, size, size + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (offsets[:, 1, None] + arange)[:, None, None, :].expand(batch, channels, size, size)
    return cropped.gather(3, cols)


class CameraEncoder(nn.Module):
    """uint8 [B, 3, s, s] -> [B, out_dim]: stride-2 convs (GroupNorm, SiLU), flatten, linear."""

    def __init__(self, size: int, channels: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for i, ch in enumerate(channels):
            kernel = 5 if i == 0 else 3
            layers += [
                nn.Conv2d(in_ch, ch, kernel, stride=2, padding=kernel // 2),
                nn.GroupNorm(math.gcd(8, ch), ch),
                nn.SiLU(),
            ]
            in_ch = ch
        self.convs = nn.Sequential(*layers)
        final = size >> len(channels)
        self.proj = nn.Linear(in_ch * final * final, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() * (2.0 / 255.0) - 1.0
        return self.norm(self.proj(self.convs(x).flatten(1)))
