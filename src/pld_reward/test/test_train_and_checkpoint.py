from pathlib import Path

import numpy as np
import pytest

from pld_reward import checkpoint
from pld_reward.classifier import SuccessClassifier
from pld_reward.frames import concat
from pld_reward.preprocess import FrameError
from pld_reward.train import (
    MIN_PROPRIO_SCALE,
    TRAIN_STATE_FILE,
    balanced_indices,
    fit,
    fit_proprio_normalisation,
    split_episodes,
    train_classifier,
)


def _frames(make_episode, cfg, episodes=16, task="pick_cube", first_seed=0):
    parts = [
        make_episode(first_seed + s, cfg, task, success_from=None if s % 4 == 3 else 8)
        for s in range(episodes)
    ]
    return concat(parts)


def test_split_keeps_each_episode_on_one_side_and_is_stable(tiny_cfg, make_episode) -> None:
    frames = _frames(make_episode, tiny_cfg, 40)
    train, held = split_episodes(frames, 0.25)
    assert not np.any(train & held) and np.all(train | held)
    held_episodes = set(frames.episode[held].tolist())
    assert 4 <= len(held_episodes) <= 16
    assert not held_episodes & set(frames.episode[train].tolist())
    # adding episodes never moves the old ones
    bigger = concat([make_episode(s, tiny_cfg) for s in range(40)] + [make_episode(99, tiny_cfg)])
    _, held2 = split_episodes(bigger, 0.25)
    names = lambda f, m: {f.metas[e]["seed"] for e in set(f.episode[m].tolist())}  # noqa: E731
    assert names(frames, held) <= names(bigger, held2)


def test_batches_are_balanced_over_labels_and_stages() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    stages = np.array([0] * 100)
    batch = balanced_indices(labels, stages, 2000, np.random.default_rng(0))
    assert 0.45 < labels[batch].mean() < 0.55


def test_training_learns_calibrates_saves_and_loads(tmp_path: Path, training_cfg, make_episode) -> None:
    cfg = training_cfg
    frames = _frames(make_episode, cfg, 24)
    report = train_classifier(cfg, frames, tmp_path / "clf", holdout_fraction=0.3, progress=False)
    held = report["calibration"]["held_out"][0]
    assert held["frames"] > 0 and held["positives"] > 0
    assert held["recall"] >= 0.9 and held["precision"] >= 0.99  # the square is easy to see
    assert report["losses"][-1] < report["losses"][0]
    classifier = SuccessClassifier.load(tmp_path / "clf")
    fresh = make_episode(1234, cfg)
    images_full = {  # back to camera size: each pixel repeated (pooling returns the same frame)
        name: np.repeat(np.repeat(fresh.images[10, i], 2, axis=0), 2, axis=1)
        for i, name in enumerate(cfg.cameras)
    }
    assert classifier.judge(images_full).success
    images_full["side"] = np.repeat(np.repeat(fresh.images[0, 0], 2, axis=0), 2, axis=1)
    assert not classifier.judge(images_full).success
    # the run-time path pools inside the jit: the same numbers as the stored (numpy-pooled) frames give
    from pld_reward.classifier import predict_probabilities
    from pld_reward.preprocess import frame_input

    rng = np.random.default_rng(0)
    noisy = {name: rng.integers(0, 256, (32, 32, 3), np.uint8) for name in cfg.cameras}
    stored = predict_probabilities(
        cfg, classifier.params, frame_input(noisy, cfg)[None], np.zeros((1, 15)), [0]
    )
    assert classifier.probability(noisy) == pytest.approx(float(stored[0]), abs=1e-6)
    with pytest.raises(FrameError, match="missing camera"):
        classifier.judge({"side": images_full["side"]})
    assert not (tmp_path / "clf" / TRAIN_STATE_FILE).exists()


def test_an_interrupted_fit_resumes_from_its_training_checkpoint(
    tmp_path: Path, training_cfg, make_episode
) -> None:
    from pld_reward.model import init_params
    from pld_reward.train import TrainState, _save_state, make_optimizer

    cfg = training_cfg
    frames = _frames(make_episode, cfg, 8)
    # what a run killed after 145 of 150 steps leaves behind
    params = init_params(cfg)
    state = TrainState(params, make_optimizer(cfg).init(params), 145)
    _save_state(tmp_path / TRAIN_STATE_FILE, state, cfg)
    _, losses = fit(cfg, frames, tmp_path, progress=False)
    assert len(losses) == 1  # only steps 145..149 ran (a loss is logged every 25 steps and at the end)
    assert not (tmp_path / TRAIN_STATE_FILE).exists()
    _save_state(tmp_path / TRAIN_STATE_FILE, state, cfg)
    with pytest.raises(ValueError, match="another config"):
        fit(cfg.replace(learning_rate=0.5), frames, tmp_path, progress=False)


def test_broken_checkpoints_fail_with_clear_errors(tmp_path: Path, tiny_cfg) -> None:
    from pld_reward.model import init_params

    with pytest.raises(checkpoint.CheckpointError, match="no classifier at"):
        SuccessClassifier.load(tmp_path / "missing")
    folder = checkpoint.save(tmp_path / "c", tiny_cfg, init_params(tiny_cfg), {"thresholds": [0.5]})
    assert SuccessClassifier.load(folder).threshold(0) == 0.5
    params = folder / checkpoint.PARAMS_FILE
    blob = params.read_bytes()
    params.write_bytes(blob[:-10])
    with pytest.raises(checkpoint.CheckpointError, match="corrupted: its hash differs"):
        SuccessClassifier.load(folder)
    params.write_bytes(blob)
    (folder / checkpoint.META_FILE).write_text("{not json")
    with pytest.raises(checkpoint.CheckpointError, match="corrupted or not a classifier"):
        SuccessClassifier.load(folder)


def test_proprio_normalisation_is_fitted_on_training_frames_saved_and_applied(
    tmp_path: Path, tiny_cfg, make_episode
) -> None:
    """A TCP height in metres next to joint angles of a radian: each value gets its own mean and scale
    (a LayerNorm across the vector would drown the centimetres), fitted once and kept by the checkpoint."""
    import jax.numpy as jnp

    from pld_reward.model import PROPRIO_CLIP, init_params, normalise_proprio

    cfg = tiny_cfg.replace(use_proprio=True)
    frames = _frames(make_episode, cfg, 8)
    rng = np.random.default_rng(0)
    frames.proprio[:] = rng.normal(0.0, 1.0, frames.proprio.shape)
    frames.proprio[:, 2] = rng.normal(0.08, 0.01, len(frames))
    frames.proprio[:, 7] = 0.04  # never moves: a floored scale, not a division by 0
    fitted = fit_proprio_normalisation(cfg, frames)
    assert fitted.proprio_mean[2] == pytest.approx(float(frames.proprio[:, 2].mean()), rel=1e-5)
    assert fitted.proprio_scale[2] == pytest.approx(float(frames.proprio[:, 2].std()), rel=1e-4)
    assert fitted.proprio_scale[7] == MIN_PROPRIO_SCALE
    assert fit_proprio_normalisation(fitted, frames) is fitted  # fine-tuning keeps its numbers
    assert fit_proprio_normalisation(tiny_cfg, frames) is tiny_cfg  # images only: nothing to fit
    values = np.asarray(normalise_proprio(jnp.asarray(frames.proprio), fitted))
    assert abs(values[:, 2].mean()) < 1e-3 and values[:, 2].std() == pytest.approx(1.0, rel=1e-3)
    far = frames.proprio[:1].copy()
    far[0, 2] = 100.0  # a fault, not information: clipped
    assert float(normalise_proprio(jnp.asarray(far), fitted)[0, 2]) == PROPRIO_CLIP
    checkpoint.save(tmp_path / "clf", fitted, init_params(fitted), {"thresholds": [0.5]})
    assert SuccessClassifier.load(tmp_path / "clf").cfg == fitted
