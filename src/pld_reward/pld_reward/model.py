"""The success classifier network (Flax linen): a ResNet-10-style image encoder and a 3-layer MLP head.

As in the PLD paper (ResNet-10 encoder + 3-layer MLP), but trained from scratch: nothing may be downloaded
here, and the camera frames of one task are narrow enough that a small encoder learns them in minutes on a
CPU. GroupNorm instead of BatchNorm keeps the parameters the only state (no running statistics to carry
between training and inference). One encoder is shared by every camera; their features, the optional
proprioception and the stage (one-hot) meet in the head. With `stage_mode: heads` the head ends in one
logit per stage and the stage picks its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from pld_reward.config import ClassifierConfig


def norm_groups(width: int) -> int:
    """GroupNorm groups of 8 channels: a group of one channel on the last, 2x2 or 1x1, feature map would
    normalise a handful of values to nothing."""
    return max(1, width // 8)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (a 1x1 projection when the shape changes)."""

    width: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        groups = norm_groups(self.width)
        y = nn.Conv(self.width, (3, 3), strides=self.stride, padding=1, use_bias=False)(x)
        y = nn.relu(nn.GroupNorm(num_groups=groups)(y))
        y = nn.Conv(self.width, (3, 3), padding=1, use_bias=False)(y)
        y = nn.GroupNorm(num_groups=groups)(y)
        if x.shape[-1] != self.width or self.stride != 1:
            x = nn.Conv(self.width, (1, 1), strides=self.stride, use_bias=False)(x)
            x = nn.GroupNorm(num_groups=groups)(x)
        return nn.relu(x + y)


class ResNet10Encoder(nn.Module):
    """Stem (3x3 conv stride 2 + max-pool) and four stages of one BasicBlock each, global average pool."""

    widths: Sequence[int] = (8, 16, 32, 64)

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = nn.Conv(self.widths[0], (3, 3), strides=2, padding=1, use_bias=False)(images)
        x = nn.relu(nn.GroupNorm(num_groups=norm_groups(self.widths[0]))(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for index, width in enumerate(self.widths):
            x = BasicBlock(width, stride=1 if index == 0 else 2)(x)
        return jnp.mean(x, axis=(-3, -2))


PROPRIO_CLIP = 10.0  # normalised values beyond this many scales are a fault, not information


def normalise_proprio(proprio: jax.Array, cfg: ClassifierConfig) -> jax.Array:
    """(proprio - mean) / scale with the config's fitted numbers (identity before they are fitted)."""
    if cfg.proprio_mean:
        proprio = (proprio - jnp.asarray(cfg.proprio_mean)) / jnp.asarray(cfg.proprio_scale)
    return jnp.clip(proprio, -PROPRIO_CLIP, PROPRIO_CLIP)


class SuccessClassifierNet(nn.Module):
    """images [B, C, H, W, 3] float, proprio [B, P] (P may be 0), stage [B] int -> success logit [B]."""

    config: ClassifierConfig

    @nn.compact
    def __call__(self, images: jax.Array, proprio: jax.Array, stage: jax.Array) -> jax.Array:
        cfg = self.config
        batch, cameras = images.shape[:2]
        flat = images.reshape((batch * cameras, *images.shape[2:]))
        features = ResNet10Encoder(tuple(cfg.encoder_widths))(flat).reshape((batch, -1))
        parts = [features]
        if cfg.use_proprio:
            parts.append(normalise_proprio(proprio, cfg))
        stage_one_hot = jax.nn.one_hot(stage, cfg.num_stages)
        if cfg.num_stages > 1 and cfg.stage_mode == "input":
            parts.append(stage_one_hot)
        x = jnp.concatenate(parts, axis=-1)
        for width in (cfg.head_hidden, cfg.head_hidden):
            x = nn.relu(nn.LayerNorm()(nn.Dense(width)(x)))
        heads = cfg.num_stages if cfg.stage_mode == "heads" else 1
        logits = nn.Dense(heads)(x)
        if heads == 1:
            return logits[:, 0]
        return jnp.sum(logits * stage_one_hot, axis=-1)


def init_params(cfg: ClassifierConfig, seed: int | None = None) -> Any:
    """Fresh parameters for `cfg` (seed: cfg.seed unless given)."""
    net = SuccessClassifierNet(cfg)
    images = jnp.zeros((1, len(cfg.cameras), cfg.input_size, cfg.input_size, 3), jnp.float32)
    proprio = jnp.zeros((1, cfg.proprio_dim if cfg.use_proprio else 0), jnp.float32)
    stage = jnp.zeros((1,), jnp.int32)
    return net.init(jax.random.PRNGKey(cfg.seed if seed is None else seed), images, proprio, stage)
