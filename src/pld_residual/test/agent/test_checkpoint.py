"""Learner checkpoints: save -> load -> the same next updates as the uninterrupted run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import flax.serialization
import jax
import numpy as np
import pytest

from pld_residual.agent import learner
from pld_residual.agent.checkpoint import load_checkpoint, save_checkpoint
from pld_residual.agent.config import ResidualSACConfig


def test_resume_gives_identical_updates(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable, tmp_path: Path
) -> None:
    state, _ = learner.update(learner.create(tiny_config, obs_dim, seed=4), make_batch(seed=4))
    save_checkpoint(state, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == state.config and loaded.obs_dim == obs_dim and int(loaded.step) == 25
    batch = make_batch(seed=5)
    a, info_a = learner.update(state, batch)
    compiled = learner.update._cache_size()
    b, info_b = learner.update(loaded, batch)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert {k: float(v) for k, v in info_a.items()} == {k: float(v) for k, v in info_b.items()}
    assert learner.update._cache_size() == compiled  # a loaded state reuses the compiled update
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["learner.json", "learner.msgpack"]


def test_averaged_actor_survives_a_checkpoint_and_old_checkpoints_still_load(
    tiny_config: ResidualSACConfig, obs_dim: int, make_batch: Callable, tmp_path: Path
) -> None:
    config = tiny_config.replace(actor_ema=0.9)
    state, _ = learner.update(learner.create(config, obs_dim, seed=4), make_batch(seed=4))
    save_checkpoint(state, tmp_path / "ema")
    loaded = load_checkpoint(tmp_path / "ema")
    for x, y in zip(
        jax.tree.leaves(state.actor_ema_params), jax.tree.leaves(loaded.actor_ema_params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # a checkpoint written before the field existed: same payload without `actor_ema_params`
    plain, _ = learner.update(learner.create(tiny_config, obs_dim, seed=4), make_batch(seed=4))
    file = save_checkpoint(plain, tmp_path / "old")
    payload = flax.serialization.msgpack_restore(file.read_bytes())
    del payload["state"]["actor_ema_params"]
    file.write_bytes(flax.serialization.msgpack_serialize(payload))
    assert load_checkpoint(tmp_path / "old").actor_ema_params is None


def test_loading_garbage_or_nothing_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no learner checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "learner.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable learner checkpoint"):
        load_checkpoint(tmp_path)
