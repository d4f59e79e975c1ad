"""Episodes written through the dataset writer read back exactly, and the index says what they hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pld_residual.dataset import topics
from pld_residual.dataset.index import load_index
from pld_residual.dataset.reader import load_dataset, read_episode, to_sft_episode
from pld_residual.dataset.typestore import pld_typestore
from pld_residual.dataset.writer import DatasetWriter


def test_constants_match_the_message_definitions() -> None:
    store = pld_typestore()
    command = store.types["pld_interfaces/msg/ActionCommand"]
    event = store.types["pld_interfaces/msg/EpisodeEvent"]
    for value, name in topics.PROVENANCE.items():
        assert getattr(command, f"PROVENANCE_{name.upper()}") == value
    for value, name in topics.PHASES.items():
        assert getattr(event, f"PHASE_{name.upper()}") == value
    for value, name in topics.END_REASONS.items():
        assert getattr(event, f"END_{name.upper()}") == value


def test_an_episode_reads_back_exactly(
    dataset_root: Path, write_episode: Callable, expected: Callable, names: dict
) -> None:
    with DatasetWriter(dataset_root) as dataset:
        record = write_episode(dataset, steps=5, t_base=2, seed=3)
    assert record["bag"] == "episode_000000" and record["length"] == 5
    assert record["provenance"] == {"base": 2, "residual": 3}
    assert record["cameras"] == names["cameras"] and record["t_base"] == 2
    assert load_index(dataset_root) == [record]
    assert not (dataset_root / ".partial").exists() or not any((dataset_root / ".partial").iterdir())

    episode = read_episode(dataset_root / record["bag"])
    want = expected(5, 3)
    for cam in names["cameras"]:
        np.testing.assert_array_equal(episode.images[cam], want["images"][cam])
    np.testing.assert_array_equal(episode.proprio, want["proprio"])
    assert episode.proprio_names == names["proprio"]
    np.testing.assert_array_equal(episode.base, want["base"])
    np.testing.assert_array_equal(episode.residual[2:], want["residual"][2:])
    assert not episode.residual[:2].any()  # the residual did not act during probing
    np.testing.assert_allclose(episode.command[2:], want["base"][2:] + 0.1 * want["residual"][2:], atol=1e-6)
    assert episode.provenance.tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(episode.reward_probability, want["probability"])
    assert episode.reward_success.tolist() == [False] * 4 + [True]
    assert episode.phases == [(1, 0), (2, 2), (3, 5)]
    assert episode.instruction == "pick up the red cube"

    sft = to_sft_episode(episode)
    assert len(sft) == 5 and sft.proprio.shape == (5, 3) and sft.images["side"].shape == (5, 8, 6, 3)
    np.testing.assert_array_equal(sft.actions, episode.command)
    assert sft.meta["t_base"] == 2 and sft.source == "pld" and sft.task == "pick_cube"


def test_episode_ids_continue_and_failures_are_kept_but_not_loaded(
    dataset_root: Path, write_episode: Callable
) -> None:
    with DatasetWriter(dataset_root) as dataset:
        write_episode(dataset, seed=0)
        write_episode(dataset, seed=1, success=False)
    with DatasetWriter(dataset_root) as dataset:
        record = write_episode(dataset, seed=2, task="peg_insertion")
    assert record["episode_id"] == 2
    assert [r["seed"] for r in load_index(dataset_root)] == [0, 1, 2]
    assert [e.seed for e in load_dataset(dataset_root)] == [0, 2]
    assert [e.seed for e in load_dataset(dataset_root, only_successful=False, tasks=["pick_cube"])] == [0, 1]


def test_bad_input_is_refused_with_what_is_wrong(dataset_root: Path) -> None:
    with DatasetWriter(dataset_root) as dataset:
        with pytest.raises(ValueError, match="instruction"):
            dataset.episode(task="pick_cube", instruction="", seed=0, source="pld")
        with dataset.episode(task="pick_cube", instruction="go", seed=0, source="pld") as episode:
            with pytest.raises(ValueError, match="7 values"):
                episode.add_command(0, 0, np.zeros(6), None, None, 0)
            with pytest.raises(ValueError, match="HxWx3 uint8"):
                episode.add_observation(0, 0, {"side": np.zeros((4, 4), np.uint8)}, np.zeros(1), ["x"])
            with pytest.raises(ValueError, match="proprio names"):
                episode.add_observation(0, 0, {}, np.zeros(2), ["x"])
            episode.abort()
        with pytest.raises(RuntimeError, match="another process"):
            DatasetWriter(dataset_root).open()
    assert load_index(dataset_root) == []


def test_leaving_an_episode_without_finish_discards_it(dataset_root: Path, write_episode: Callable) -> None:
    with DatasetWriter(dataset_root) as dataset:
        write_episode(dataset, seed=0)
        unfinished = dataset.episode(task="pick_cube", instruction="go", seed=1, source="pld")
        with pytest.raises(RuntimeError, match="without finish"), unfinished as episode:
            episode.add_command(0, 0, np.zeros(7), None, None, 0)
        interrupted = dataset.episode(task="pick_cube", instruction="go", seed=2, source="pld")
        with pytest.raises(KeyboardInterrupt), interrupted as episode:  # Ctrl-C drops that episode only
            episode.add_command(0, 0, np.zeros(7), None, None, 0)
            raise KeyboardInterrupt
    assert [r["seed"] for r in load_index(dataset_root)] == [0]
    assert sorted(p.name for p in dataset_root.iterdir() if p.name.startswith("episode_")) == [
        "episode_000000"
    ]
