"""`SuccessClassifier`: a trained classifier at run time (reward node, RL reward source, mining, bench).

`judge(images, proprio, stage)` checks the frame (preprocess.py: a missing camera or a wrong size raises
`FrameError`), returns the success probability and the thresholded decision of that stage.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pld_reward import checkpoint
from pld_reward.augment import normalise, to_float
from pld_reward.config import ClassifierConfig
from pld_reward.model import SuccessClassifierNet
from pld_reward.preprocess import check_frame, proprio_input


class Judgement(NamedTuple):
    probability: float
    success: bool
    stage: int


@functools.cache
def logits_function(cfg: ClassifierConfig) -> Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]:
    """Jitted (params, uint8 images [B, C, S, S, 3], proprio [B, P], stage index [B]) -> logits [B]."""
    net = SuccessClassifierNet(cfg)

    @jax.jit
    def logits(params: Any, images: jax.Array, proprio: jax.Array, stage: jax.Array) -> jax.Array:
        return net.apply(params, normalise(to_float(images)), proprio, stage)

    return logits


@functools.cache
def camera_probability_function(cfg: ClassifierConfig) -> Callable[..., jax.Array]:
    """Jitted (params, uint8 frames at camera size [B, C, image_size, image_size, 3], proprio, stage index)
    -> P(success) [B]; pooled exactly as `preprocess.pool` (mean, rounded to uint8) but inside XLA, which
    takes ~1 ms of numpy off every frame the reward node judges."""
    net = SuccessClassifierNet(cfg)
    factor = cfg.pool

    @jax.jit
    def probability(params: Any, frames: jax.Array, proprio: jax.Array, stage: jax.Array) -> jax.Array:
        b, c, h, w, _ = frames.shape
        blocks = frames.reshape(b, c, h // factor, factor, w // factor, factor, 3).astype(jnp.float32)
        pooled = jnp.round(blocks.mean(axis=(3, 5)))  # the uint8 values `preprocess.pool` stores
        return jax.nn.sigmoid(net.apply(params, normalise(to_float(pooled)), proprio, stage))

    return probability


def stage_indices(cfg: ClassifierConfig, stages: np.ndarray) -> np.ndarray:
    """Reward.stage ids -> 0-based indices (checked)."""
    return np.asarray([cfg.stage_index(int(s)) for s in np.asarray(stages).reshape(-1)], np.int32)


def predict_probabilities(
    cfg: ClassifierConfig,
    params: Any,
    images: np.ndarray,
    proprio: np.ndarray,
    stages: np.ndarray,
    batch: int = 256,
) -> np.ndarray:
    """Success probabilities of prepared frames (input-size uint8), in batches (training, mining, bench)."""
    logits = logits_function(cfg)
    index = stage_indices(cfg, stages)
    width = cfg.proprio_dim if cfg.use_proprio else 0
    prop = np.asarray(proprio, np.float32)[:, :width] if width else np.zeros((len(index), 0), np.float32)
    out = []
    for start in range(0, len(index), batch):
        part = slice(start, start + batch)
        out.append(np.asarray(jax.nn.sigmoid(logits(params, images[part], prop[part], index[part]))))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


class SuccessClassifier:
    """A loaded classifier: probabilities and thresholded decisions, per stage."""

    def __init__(self, cfg: ClassifierConfig, params: Any, calibration: dict[str, Any]) -> None:
        self.cfg = cfg
        self.params = params
        self.calibration = calibration
        self.thresholds = [float(t) for t in calibration["thresholds"]]
        self._camera_probability = camera_probability_function(cfg)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> SuccessClassifier:
        """From a `pld reward train` output directory (CheckpointError when missing or corrupted)."""
        return cls(*checkpoint.load(directory))

    def threshold(self, stage: int = 0) -> float:
        return self.thresholds[self.cfg.stage_index(stage)]

    def probability(self, images: Mapping[str, Any], proprio: Any = None, stage: int = 0) -> float:
        """P(success) of one observation; raises FrameError on a frame it cannot judge."""
        index = self.cfg.stage_index(stage)
        frame = np.stack(check_frame(images, self.cfg))[None]  # camera size: pooled inside the jit
        prop = proprio_input(proprio, self.cfg)[None]
        probability = self._camera_probability(self.params, frame, prop, np.asarray([index], np.int32))
        return float(probability[0])

    def judge(
        self, images: Mapping[str, Any], proprio: Any = None, stage: int = 0, threshold: float | None = None
    ) -> Judgement:
        """Probability and decision (at the calibrated threshold of `stage` unless `threshold` is given)."""
        probability = self.probability(images, proprio, stage)
        limit = self.threshold(stage) if threshold is None else threshold
        return Judgement(probability, probability >= limit, stage)
