"""Shared helpers for pld_reward tests: a tiny classifier config and synthetic, learnable frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pld_reward.config import ClassifierConfig
from pld_reward.frames import EpisodeFrames

TINY = dict(image_size=32, input_size=16, encoder_widths=(4, 4, 8, 8), head_hidden=16, batch_size=16)
# the training tests share this config, so jit compiles their update once per session
TRAINING = dict(train_steps=150, learning_rate=3e-3)


def tiny_config(**changes: Any) -> ClassifierConfig:
    return ClassifierConfig(**{**TINY, **changes})


def synthetic_episode(
    seed: int,
    cfg: ClassifierConfig,
    task: str = "pick_cube",
    frames: int = 12,
    success_from: int | None = 8,
    source: str = "synthetic",
) -> EpisodeFrames:
    """Dark noisy frames; from `success_from` on a bright square appears in the first camera (success)."""
    rng = np.random.default_rng(seed)
    size = cfg.input_size
    images = rng.integers(0, 60, (frames, len(cfg.cameras), size, size, 3), dtype=np.uint8)
    labels = np.zeros(frames, np.uint8)
    if success_from is not None:
        labels[success_from:] = 1
        corner = rng.integers(0, size // 2, 2)
        images[success_from:, 0, corner[0] : corner[0] + size // 3, corner[1] : corner[1] + size // 3] = 230
    meta = {
        "task": task,
        "stage": cfg.stage_of_task(task),
        "seed": seed,
        "source": source,
        "labeller": "predicate",
        "cameras": list(cfg.cameras),
        "input_size": size,
    }
    proprio = rng.normal(size=(frames, cfg.proprio_dim)).astype(np.float32)
    return EpisodeFrames(images, proprio, labels, np.arange(frames, dtype=np.int32), meta)


@pytest.fixture
def tiny_cfg() -> ClassifierConfig:
    return tiny_config()


@pytest.fixture
def training_cfg() -> ClassifierConfig:
    return tiny_config(**TRAINING)


@pytest.fixture
def make_episode():
    """synthetic_episode(seed, cfg, task, frames, success_from, source)."""
    return synthetic_episode
