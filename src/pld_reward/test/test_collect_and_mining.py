"""Collection and false-positive mining against the real simulator (tiny images, one episode per round)."""

from pathlib import Path

import numpy as np
import pytest

from pld_reward import checkpoint
from pld_reward.collect import CollectConfig, collect, keep_mask
from pld_reward.frames import load_frames, read_episode, write_episode
from pld_reward.mining import MINED_DIR, MiningConfig, mine, mining_frame_dirs
from pld_reward.model import init_params


def test_keep_mask_keeps_successes_boundaries_and_every_nth() -> None:
    labels = np.array([0] * 12 + [1] * 3 + [0] * 5)
    keep = keep_mask(labels, boundary_steps=2, negative_stride=5)
    assert keep[12:15].all()  # successes
    assert keep[10:12].all() and keep[15:17].all()  # two frames either side of each change
    assert keep[0] and keep[5] and not keep[1] and not keep[18]


@pytest.mark.slow
def test_collect_labels_frames_with_the_predicate_and_resumes(tmp_path: Path, tiny_cfg) -> None:
    cfg_collect = CollectConfig(episodes={"expert": 1}, after_success_steps=3, negative_stride=4)
    report = collect(cfg_collect, tiny_cfg, tmp_path, progress=False)
    assert report["written"] == 1 and report["episode_successes"] == {"expert": [1, 1]}
    frames, problems = load_frames([tmp_path])
    assert problems == [] and frames.images.shape[1:] == (2, 16, 16, 3)
    # the expert succeeds and then holds for 3 more steps: the last 4 kept frames are successes
    assert frames.labels[-4:].tolist() == [1, 1, 1, 1] and frames.labels[0] == 0
    assert frames.metas[0]["labeller"] == "predicate" and frames.metas[0]["seed"] == 0
    again = collect(cfg_collect, tiny_cfg, tmp_path, progress=False)
    assert again["written"] == 0 and again["skipped_existing"] == 1


@pytest.mark.slow
def test_mining_adds_false_positives_as_negatives_and_retrains(
    tmp_path: Path, training_cfg, make_episode
) -> None:
    cfg = training_cfg
    train_dir = tmp_path / "train"
    for seed in range(16):
        write_episode(train_dir, make_episode(seed, cfg, success_from=None if seed % 4 == 3 else 8))
    # a classifier that calls everything success: every failure frame of the fresh rollout is a false positive
    checkpoint.save(tmp_path / "clf", cfg, init_params(cfg), {"thresholds": [0.0]})
    mining = MiningConfig(rounds=1, episodes={"expert": 1}, finetune_steps=cfg.train_steps)  # one compile
    report = mine(tmp_path / "clf", [train_dir], tmp_path / "work", mining, progress=False)
    first = report["rounds"][0]
    assert len(report["rounds"]) == 2 and report["mining_rounds"] == 1
    assert not first["target_holds"] and first["false_positives"] == first["stages"][0]["fp"] > 0
    mined = sorted((tmp_path / "work" / MINED_DIR).glob("*.npz"))
    assert len(mined) == 1
    shard = read_episode(mined[0])
    assert shard.meta["source"] == "mined0_expert" and len(shard.labels) == first["false_positives"]
    assert not shard.labels.any()
    # retrained on the first training set, the round's whole rollouts and its false positives once more
    round_frames, _ = load_frames([tmp_path / "work" / "round0"])
    assert first["retrained"]["frames"] == 16 * 12 + len(round_frames) + first["false_positives"]
    added = [tmp_path / "work" / d for d in ("round0", "round1", MINED_DIR)]  # round 1: judged, the last
    assert mining_frame_dirs(tmp_path / "work") == added
    retrained = checkpoint.load(tmp_path / "clf")[2]
    assert retrained["thresholds"] == first["retrained"]["thresholds"] != [0.0]
    assert (tmp_path / "work" / "mining_report.json").is_file()
    # a second run continues the numbering: fresh seeds, the earlier rounds kept in the report
    once_more = MiningConfig(rounds=0, episodes={"expert": 1})
    again = mine(tmp_path / "clf", [train_dir], tmp_path / "work", once_more, progress=False)
    assert [row["round"] for row in again["rounds"]] == [0, 1, 2] and again["mining_rounds"] == 1
    assert (tmp_path / "work" / "round2").is_dir()
