"""`pld dataset verify` names truncated or corrupted bags, `--fix` leaves a usable dataset; `info` counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pld_residual.cli.main import main
from pld_residual.dataset.index import INDEX, load_index
from pld_residual.dataset.reader import load_dataset
from pld_residual.dataset.verify import dataset_info, verify_dataset
from pld_residual.dataset.writer import DatasetWriter


def _three_episodes(root: Path, write_episode: Callable) -> None:
    with DatasetWriter(root) as dataset:
        write_episode(dataset, seed=0, t_base=1)
        write_episode(dataset, seed=1, t_base=3)
        write_episode(dataset, seed=2, t_base=0, task="peg_insertion", success=False)


def _mcap(root: Path, bag: str) -> Path:
    (path,) = (root / bag).glob("*.mcap")
    return path


def test_truncated_and_corrupted_bags_are_named_and_fix_keeps_the_rest(
    dataset_root: Path, write_episode: Callable, capsys: pytest.CaptureFixture
) -> None:
    _three_episodes(dataset_root, write_episode)
    assert verify_dataset(dataset_root)["broken"] == []
    truncated = _mcap(dataset_root, "episode_000000")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    corrupted = _mcap(dataset_root, "episode_000001")
    data = bytearray(corrupted.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    corrupted.write_bytes(bytes(data))

    assert main(["dataset", "verify", str(dataset_root)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN episode_000000" in out and "BROKEN episode_000001" in out
    assert "episode_000002" not in out.replace(str(dataset_root), "")
    with pytest.warns(UserWarning, match="episode_000000"):
        assert load_dataset(dataset_root, only_successful=False, tasks=["peg_insertion"]) != []
        load_dataset(dataset_root)  # training skips the broken bags with a warning instead of failing

    assert main(["dataset", "verify", "--fix", "--json", str(dataset_root)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fixed"] and {b["bag"] for b in report["broken"]} == {"episode_000000", "episode_000001"}
    assert [r["bag"] for r in load_index(dataset_root)] == ["episode_000002"]
    assert sorted(p.name for p in (dataset_root / "broken").iterdir()) == ["episode_000000", "episode_000001"]
    assert main(["dataset", "verify", str(dataset_root)]) == 0


def test_a_corrupt_index_is_rebuilt_from_the_bags(dataset_root: Path, write_episode: Callable) -> None:
    _three_episodes(dataset_root, write_episode)
    (dataset_root / INDEX).write_text("{ not json")
    with pytest.raises(ValueError, match="verify --fix"):
        verify_dataset(dataset_root)
    report = verify_dataset(dataset_root, fix=True)
    assert report["fixed"] and report["ok"] == 3 and "index_error" in report
    assert [r["seed"] for r in load_index(dataset_root)] == [0, 1, 2]


def test_info_counts_per_task(
    dataset_root: Path, write_episode: Callable, capsys: pytest.CaptureFixture
) -> None:
    _three_episodes(dataset_root, write_episode)
    info = dataset_info(dataset_root)
    pick = info["tasks"]["pick_cube"]
    assert info["episodes"] == 3 and pick["episodes"] == 2 and pick["successes"] == 2
    assert pick["t_base"] == {"mean": 2.0, "min": 1, "max": 3}
    assert pick["provenance"] == {"base": 0.4, "residual": 0.6}  # 4 base and 6 residual steps of 10
    assert info["tasks"]["peg_insertion"]["successes"] == 0 and info["bytes"] > 0
    assert main(["dataset", "info", str(dataset_root)]) == 0
    text = capsys.readouterr().out
    assert "pick_cube" in text and "residual 60%" in text
    assert main(["dataset", "info", str(dataset_root / "nothing")]) == 2
    assert "no dataset index" in capsys.readouterr().err
