import jax
import numpy as np
import pytest

from pld_reward.augment import augment, colour_jitter, random_shift
from pld_reward.preprocess import FrameError, check_frame, frame_input, pool, proprio_input


def _images(cfg, size=None):
    size = size or cfg.image_size
    return {name: np.full((size, size, 3), 100, np.uint8) for name in cfg.cameras}


def test_pool_averages_blocks() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[:2, :2] = 200
    image[0, 2] = 40
    out = pool(image, 2)
    assert out.shape == (2, 2, 3) and out[0, 0, 0] == 200 and out[0, 1, 0] == 10 and out[1, 1, 0] == 0


def test_frames_are_checked_with_clear_messages(tiny_cfg) -> None:
    assert frame_input(_images(tiny_cfg), tiny_cfg).shape == (2, 16, 16, 3)
    with pytest.raises(FrameError, match=r"missing camera\(s\) \['wrist'\]"):
        check_frame({"side": _images(tiny_cfg)["side"]}, tiny_cfg)
    with pytest.raises(
        FrameError, match=r"camera 'side': expected an image of shape \(32, 32, 3\), got \(64, 64, 3\)"
    ):
        check_frame(_images(tiny_cfg, 64), tiny_cfg)
    bad = _images(tiny_cfg)
    bad["wrist"] = bad["wrist"].astype(np.float32)
    with pytest.raises(FrameError, match="uint8"):
        check_frame(bad, tiny_cfg)


def test_proprio_is_checked_only_when_used(tiny_cfg) -> None:
    assert proprio_input(None, tiny_cfg).shape == (0,)
    cfg = tiny_cfg.replace(use_proprio=True, proprio_dim=3)
    assert proprio_input([1, 2, 3], cfg).dtype == np.float32
    with pytest.raises(FrameError, match="NaN"):
        proprio_input([1, np.nan, 3], cfg)
    with pytest.raises(FrameError, match="expected 3 values, got 2"):
        proprio_input([1, 2], cfg)


def test_augmentation_shifts_and_jitters_per_image(tiny_cfg) -> None:
    key = jax.random.PRNGKey(0)
    images = np.zeros((8, 16, 16, 3), np.float32)
    images[:, 6:10, 6:10] = 1.0
    shifted = np.asarray(random_shift(key, images, 3))
    centres = [np.argwhere(img[..., 0] > 0.5).mean(axis=0) for img in shifted]
    assert len({tuple(c) for c in centres}) > 1  # images move by different offsets
    assert all(np.abs(c - 7.5).max() <= 3 for c in centres)
    jittered = np.asarray(colour_jitter(key, np.full((6, 4, 4, 3), 0.5, np.float32), 0.3, 0.0, 0.0))
    assert jittered.min() >= 0.35 - 1e-6 and jittered.max() <= 0.65 + 1e-6 and jittered.std() > 0
    batch = np.random.default_rng(0).random((2, 2, 16, 16, 3)).astype(np.float32)
    out = np.asarray(augment(key, batch, tiny_cfg))
    assert out.shape == batch.shape and out.min() >= 0.0 and out.max() <= 1.0
