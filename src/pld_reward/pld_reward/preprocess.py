"""Camera frames -> the classifier's input: checked, then average-pooled to `input_size`, kept uint8.

The one place where frames are validated, so a wrong size or a missing camera fails with a message that
names it, at collection, training and inference alike. Pooling happens in numpy before anything is
stored, so a frame set holds exactly what the encoder sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pld_reward.config import ClassifierConfig


class FrameError(ValueError):
    """A frame the classifier cannot judge; `reason` is a short key for counters (`missing_camera`,
    `image_size`, `dtype`, `proprio`, `malformed`, `encoding`), the message names the camera or field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_frame(images: Mapping[str, Any], cfg: ClassifierConfig) -> list[np.ndarray]:
    """The configured cameras' images, in order, each [image_size, image_size, 3] uint8."""
    if not isinstance(images, Mapping):
        raise FrameError(
            "malformed", f"images must be a mapping camera name -> array, got {type(images).__name__}"
        )
    missing = [name for name in cfg.cameras if name not in images]
    if missing:
        raise FrameError(
            "missing_camera",
            f"missing camera(s) {missing}; the classifier needs {list(cfg.cameras)}, got {sorted(images)}",
        )
    out = []
    expected = (cfg.image_size, cfg.image_size, 3)
    for name in cfg.cameras:
        image = np.asarray(images[name])
        if image.shape != expected:
            raise FrameError(
                "image_size", f"camera {name!r}: expected an image of shape {expected}, got {image.shape}"
            )
        if image.dtype != np.uint8:
            raise FrameError("dtype", f"camera {name!r}: expected uint8 rgb, got {image.dtype}")
        out.append(image)
    return out


def pool(image: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool an [H, W, 3] (or [..., H, W, 3]) uint8 image by an integer factor, rounding to uint8."""
    if factor == 1:
        return np.asarray(image, np.uint8)
    *lead, h, w, c = image.shape
    blocks = image.reshape(*lead, h // factor, factor, w // factor, factor, c).astype(np.float32)
    return np.rint(blocks.mean(axis=(-4, -2))).astype(np.uint8)


def frame_input(images: Mapping[str, Any], cfg: ClassifierConfig) -> np.ndarray:
    """One observation's images -> [cameras, input_size, input_size, 3] uint8."""
    return np.stack([pool(image, cfg.pool) for image in check_frame(images, cfg)])


def proprio_input(proprio: Any, cfg: ClassifierConfig) -> np.ndarray:
    """Proprioception as [proprio_dim] float32 (zeros of length 0 when the classifier ignores it)."""
    if not cfg.use_proprio:
        return np.zeros(0, np.float32)
    if proprio is None:
        raise FrameError(
            "proprio", f"the classifier reads proprioception ({cfg.proprio_dim} values), got none"
        )
    values = np.asarray(proprio, np.float32).reshape(-1)
    if values.shape != (cfg.proprio_dim,):
        raise FrameError("proprio", f"proprio: expected {cfg.proprio_dim} values, got {values.shape[0]}")
    if not np.all(np.isfinite(values)):
        raise FrameError("proprio", "proprio holds NaN or inf")
    return values
