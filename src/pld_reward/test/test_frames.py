from pathlib import Path

import numpy as np
import pytest

from pld_reward.frames import concat, load_frames, read_episode, write_episode


def test_shards_round_trip_and_concatenate(tmp_path: Path, tiny_cfg, make_episode) -> None:
    episodes = [make_episode(seed, tiny_cfg) for seed in range(3)]
    for episode in episodes:
        write_episode(tmp_path, episode)
    back = read_episode(tmp_path / f"{episodes[1].name}.npz")
    assert np.array_equal(back.images, episodes[1].images) and back.meta == episodes[1].meta
    frames, problems = load_frames([tmp_path])
    assert problems == [] and len(frames) == 36 and frames.positives == 12
    assert frames.summary()["by_task_source"]["pick_cube/synthetic"] == {
        "episodes": 3,
        "frames": 36,
        "positives": 12,
    }
    assert sorted(set(frames.episode.tolist())) == [0, 1, 2] and frames.steps.max() == 11
    subset = frames.select(frames.labels == 1)
    assert len(subset) == 12 and subset.labels.all()


def test_a_corrupted_shard_is_named_and_skipped(tmp_path: Path, tiny_cfg, make_episode) -> None:
    good = write_episode(tmp_path, make_episode(0, tiny_cfg))
    bad = write_episode(tmp_path, make_episode(1, tiny_cfg))
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])  # truncated, as by a crash mid-copy
    frames, problems = load_frames([tmp_path])
    assert len(frames.metas) == 1 and frames.metas[0]["seed"] == 0
    assert len(problems) == 1 and bad.name in problems[0]
    with pytest.raises(ValueError, match=bad.name):
        load_frames([tmp_path], on_bad_shard="raise")
    assert good.exists()


def test_missing_directory_and_mixed_shapes(tmp_path: Path, tiny_cfg, make_episode) -> None:
    with pytest.raises(FileNotFoundError, match="pld reward collect"):
        load_frames([tmp_path / "nope"])
    small = make_episode(0, tiny_cfg)
    other = make_episode(1, tiny_cfg.replace(input_size=32, image_size=64))
    with pytest.raises(ValueError, match="disagree"):
        concat([small, other])
    with pytest.raises(ValueError, match="empty"):
        concat([])


def test_frames_next_to_a_label_change_are_ambiguous(tiny_cfg, make_episode) -> None:
    episode = make_episode(0, tiny_cfg, frames=12, success_from=8)
    episode.labels[10] = 0  # a contact flicker inside the success
    frames = concat([episode, make_episode(1, tiny_cfg, success_from=None)])
    one = frames.ambiguous(1)
    assert np.flatnonzero(one).tolist() == [7, 8, 9, 10, 11]  # 7|8 change, 9|10|11 flicker
    assert np.flatnonzero(frames.ambiguous(2)).tolist() == [6, 7, 8, 9, 10, 11]
    assert not frames.ambiguous(0).any()
    assert not one[12:].any()  # an episode without a change has no ambiguous frame
