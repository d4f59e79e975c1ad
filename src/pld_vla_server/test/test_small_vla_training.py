"""small_vla training: both heads overfit a tiny dataset, and an interrupted run resumes exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pld_vla_server.small_vla import SmallVLABackend, SmallVLAConfig
from pld_vla_server.small_vla.synthetic import synthetic_episodes

TINY = dict(
    vision_size=32, vision_channels=(8, 16), vision_dim=32, trunk_hidden=128, feature_dim=64,
    flow_hidden=128, ar_hidden=64, ar_embed=32, horizon=4,
)  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("head", ["flow", "ar"])
def test_head_overfits_two_episodes(head: str) -> None:
    config = SmallVLAConfig(head=head, **TINY)
    backend = SmallVLABackend(config)
    report = backend.finetune(
        synthetic_episodes(config, count=2, length=12),
        "full",
        steps=300,
        batch_size=32,
        learning_rate=3e-3,
        warmup_steps=10,
        augment=False,
    )
    assert report["steps"] == 300 and len(report["losses"]) == 300
    assert report["loss_first"] / report["loss_last"] >= 10.0, (report["loss_first"], report["loss_last"])


class Interrupt(Exception):
    pass


def test_resume_continues_from_saved_step(tmp_path: Path) -> None:
    config = SmallVLAConfig(head="flow", **TINY)
    episodes = synthetic_episodes(config, count=2, length=10)
    options = dict(steps=20, batch_size=8, learning_rate=1e-3, warmup_steps=4)
    reference = SmallVLABackend(config).finetune(episodes, "full", **options)

    def stop_at_15(info: dict) -> None:
        if info["step"] == 15:
            raise Interrupt

    interrupted = SmallVLABackend(config)
    with pytest.raises(Interrupt):
        interrupted.finetune(
            episodes,
            "full",
            checkpoint_dir=tmp_path,
            checkpoint_every=10,
            log_every=5,
            progress=stop_at_15,
            **options,
        )
    assert (tmp_path / "train_state.pt").exists()

    resumed = SmallVLABackend(config)  # a fresh process would start from a fresh backend too
    seen: list[int] = []
    report = resumed.finetune(
        episodes,
        "full",
        checkpoint_dir=tmp_path,
        log_every=1,
        progress=lambda i: seen.append(i["step"]),
        **options,
    )
    assert report["start_step"] == 10 and report["steps"] == 20
    assert seen == list(range(11, 21))
    assert len(report["losses"]) == 20
    # every random draw of step k is seeded by (seed, k): the resumed curve is the uninterrupted one
    np.testing.assert_allclose(report["losses"], reference["losses"], rtol=1e-5)

    again = SmallVLABackend(config).finetune(episodes, "full", checkpoint_dir=tmp_path, **options)
    assert again["start_step"] == 20 and again["steps"] == 20  # nothing left to do
