"""The auxiliary object-state loss: targets standardised per task, masks, and training through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pld_vla_server.dataset import Episode, load_episodes, save_episodes
from pld_vla_server.small_vla import SmallVLABackend, SmallVLAConfig
from pld_vla_server.small_vla.auxiliary import StateProbe, state_targets
from pld_vla_server.small_vla.synthetic import synthetic_episodes

TINY = dict(
    vision_size=32, vision_channels=(8, 16), vision_dim=32, trunk_hidden=128, feature_dim=64,
    flow_hidden=128, ar_hidden=64, horizon=4,
)  # fmt: skip


def with_state(episode: Episode, state: np.ndarray, task: str) -> Episode:
    episode.privileged = np.asarray(state, dtype=np.float32)
    episode.task = task
    return episode


def test_targets_are_standardised_per_task_and_constant_dimensions_are_masked() -> None:
    config = SmallVLAConfig(**TINY)
    a, b, c, real = synthetic_episodes(config, count=4, length=2)
    # task "cube": 2 dims, the second constant (a size); task "peg": 3 dims
    with_state(a, [[1.0, 5.0], [3.0, 5.0]], "cube")
    with_state(b, [[0.0, 0.0, 2.0], [2.0, 4.0, 2.0]], "peg")
    with_state(c, [[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]], "peg")
    real.privileged = None  # a real-robot episode: no target at all
    targets, mask = state_targets([a, b, c, real])
    assert targets.shape == mask.shape == (8, 3)
    # cube dim 0: mean 2, std 1 -> -1, +1; dim 1 constant -> masked; dim 2 does not exist -> masked
    np.testing.assert_allclose(targets[:2], [[-1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(mask[:2], [[1, 0, 0], [1, 0, 0]])
    # peg dim 0: values 0, 2, 1, 1 -> mean 1, std sqrt(0.5); dim 1: 0, 4, 2, 2 -> mean 2, std sqrt(2)
    # dim 2: 2, 2, 4, 4 -> mean 3, std 1
    s0, s1 = np.sqrt(0.5), np.sqrt(2.0)
    expected = [[-1 / s0, -2 / s1, -1], [1 / s0, 2 / s1, -1], [0, 0, 1], [0, 0, 1]]
    np.testing.assert_allclose(targets[2:6], expected, rtol=1e-6)
    assert mask[2:6].all()
    assert not mask[6:].any() and not targets[6:].any()


def test_no_state_anywhere_gives_none_and_asking_for_the_loss_is_a_clear_error() -> None:
    config = SmallVLAConfig(**TINY)
    episodes = synthetic_episodes(config, count=2, length=4)
    assert state_targets(episodes) is None
    with pytest.raises(ValueError, match="privileged"):
        SmallVLABackend(config).finetune(episodes, "full", steps=1, state_loss_weight=1.0)


def test_probe_loss_averages_only_the_unmasked_entries() -> None:
    probe = StateProbe(feature_dim=2, state_dim=2, seed=0)
    with torch.no_grad():
        probe.linear.weight.copy_(torch.eye(2))
        probe.linear.bias.zero_()
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 0.0], [3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    # squared errors 1, 4, 0 (the 96^2 is masked) over 3 entries
    assert probe.loss(features, target, mask).item() == pytest.approx(5.0 / 3.0)
    assert probe.loss(features, target, torch.zeros_like(mask)).item() == 0.0


def learnable_state_episodes(config: SmallVLAConfig) -> list[Episode]:
    """The state is a function of the proprioception, so the features can learn to predict it."""
    episodes = synthetic_episodes(config, count=2, length=16)
    for episode in episodes:
        state = np.stack([episode.proprio[:, 0] * 2.0, np.sin(episode.proprio[:, 1]), np.ones(16)], axis=1)
        with_state(episode, state, "synthetic")
    return episodes


def test_state_loss_trains_and_the_saved_model_has_no_probe(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = SmallVLAConfig(head="flow", **TINY)
    backend = SmallVLABackend(config)
    options = dict(steps=200, batch_size=16, learning_rate=3e-3, warmup_steps=10, state_loss_weight=1.0)
    report = backend.finetune(learnable_state_episodes(config), "full", **options)
    assert len(report["state_losses"]) == 200
    assert report["state_loss_first"] / report["state_loss_last"] >= 10.0, report["state_loss_last"]
    backend.save(tmp_path / "model")
    loaded = SmallVLABackend.load(tmp_path / "model")
    assert set(loaded.model.state_dict()) == set(SmallVLABackend(config).model.state_dict())
    # head-only fine-tuning does not train the features, so the probe is not used there
    head = backend.finetune(learnable_state_episodes(config), "head", steps=2, state_loss_weight=1.0)
    assert head["state_losses"] == []


class Interrupt(Exception):
    pass


def test_resume_with_state_loss_continues_the_same_curves(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = SmallVLAConfig(head="ar", **TINY)
    episodes = learnable_state_episodes(config)
    options = dict(steps=12, batch_size=8, learning_rate=1e-3, warmup_steps=2, state_loss_weight=0.5)
    reference = SmallVLABackend(config).finetune(episodes, "full", **options)

    def stop_at_9(info: dict) -> None:
        if info["step"] == 9:
            raise Interrupt

    with pytest.raises(Interrupt):
        SmallVLABackend(config).finetune(
            episodes, "full", checkpoint_dir=tmp_path, checkpoint_every=6, log_every=1, progress=stop_at_9,
            **options,
        )  # fmt: skip
    resumed = SmallVLABackend(config).finetune(episodes, "full", checkpoint_dir=tmp_path, **options)
    assert resumed["start_step"] == 6
    np.testing.assert_allclose(resumed["losses"], reference["losses"], rtol=1e-5)
    np.testing.assert_allclose(resumed["state_losses"], reference["state_losses"], rtol=1e-5)
    # a checkpoint made without the state loss cannot silently continue with it
    plain = tmp_path / "plain"
    plain_options = {**options, "state_loss_weight": 0.0, "steps": 6}
    SmallVLABackend(config).finetune(episodes, "full", checkpoint_dir=plain, **plain_options)
    with pytest.raises(ValueError, match="without state loss"):
        SmallVLABackend(config).finetune(episodes, "full", checkpoint_dir=plain, **options)


def test_privileged_state_survives_save_and_load(tmp_path: Path) -> None:
    config = SmallVLAConfig(**TINY)
    episodes = learnable_state_episodes(config)
    episodes[1].privileged = None
    save_episodes(episodes, tmp_path)
    loaded = load_episodes(tmp_path)
    np.testing.assert_array_equal(loaded[0].privileged, episodes[0].privileged)
    assert loaded[1].privileged is None
    with pytest.raises(ValueError, match="privileged"):
        Episode(
            episodes[0].images, episodes[0].proprio, episodes[0].actions, "x", "t", privileged=np.ones((3, 2))
        )
