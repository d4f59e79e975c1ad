"""to_learner_batch: named observation fields become the flat obs vector and a separate base action."""

from __future__ import annotations

import numpy as np
import pytest

from pld_residual.replay import LEARNER_KEYS, HybridSampler, ReplayBuffer, pld_obs_spec, to_learner_batch


def obs(step: int, images: bool = False) -> dict[str, np.ndarray]:
    value = {
        "features": np.full(4, step, np.float32),
        "proprio": np.full(2, 10 + step, np.float32),
        "base_action": np.full(3, 100 + step, np.float32),
    }
    if images:
        value["images"] = np.zeros((1, 2, 2, 3), np.uint8)
    return value


def buffer(images: bool = False) -> ReplayBuffer:
    spec = pld_obs_spec(
        feature_dim=4, proprio_dim=2, action_dim=3, image_shape=(1, 2, 2, 3) if images else None
    )
    buf = ReplayBuffer(spec, 16, action_dim=3)
    buf.add_episode(
        [obs(t, images) for t in range(4)], [np.full(3, t, np.float32) for t in range(3)], [0, 0, 1], True
    )
    return buf


def test_flat_layout_values_and_shapes() -> None:
    online = buffer()
    batch = to_learner_batch(HybridSampler(buffer(), online).sample_many(2, 5, np.random.default_rng(0)))
    assert set(batch) == {*LEARNER_KEYS, "is_offline"}
    assert batch["obs"].shape == (2, 5, 6) and batch["obs"].dtype == np.float32
    assert batch["base_action"].shape == (2, 5, 3) and batch["next_base_action"].shape == (2, 5, 3)
    step = batch["obs"][..., 0]
    np.testing.assert_array_equal(batch["obs"][..., 4], step + 10)  # features then proprio
    np.testing.assert_array_equal(batch["base_action"][..., 0], step + 100)
    np.testing.assert_array_equal(batch["next_obs"][..., 0], step + 1)
    np.testing.assert_array_equal(batch["next_base_action"][..., 0], step + 101)
    np.testing.assert_array_equal(batch["action"][..., 0], step)
    assert batch["reward"].shape == batch["discount"].shape == batch["mc_return"].shape == (2, 5)


def test_image_fields_cannot_be_flattened() -> None:
    batch = buffer(images=True).sample(4, np.random.default_rng(0))
    assert to_learner_batch(batch)["obs"].shape == (4, 6)  # images are simply not selected
    with pytest.raises(ValueError, match="'images' has dtype uint8"):
        to_learner_batch(batch, obs_fields=("features", "images"))
    with pytest.raises(KeyError, match="'depth'"):
        to_learner_batch(batch, obs_fields=("depth",))
