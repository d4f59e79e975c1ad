"""`pld reward ...` and `pld bench reward` through the real `pld` entry point."""

import json
from pathlib import Path

import pytest

from pld_residual.cli.main import main
from pld_reward import checkpoint
from pld_reward.frames import write_episode
from pld_reward.model import init_params


def test_frames_summary_and_a_clear_error_without_frames(
    tmp_path: Path, capsys, tiny_cfg, make_episode
) -> None:
    for seed in range(2):
        write_episode(tmp_path / "frames", make_episode(seed, tiny_cfg))
    assert main(["reward", "frames", str(tmp_path / "frames")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 24 and summary["positives"] == 8 and summary["unreadable"] == []
    assert main(["reward", "train", "--root", str(tmp_path / "empty"), "--quiet"]) == 2
    assert "pld reward collect" in capsys.readouterr().err


def test_bench_reports_test_split_metrics_and_timing(tmp_path: Path, capsys, tiny_cfg, make_episode) -> None:
    root = tmp_path / "reward" / "toy"
    checkpoint.save(root / "classifier", tiny_cfg, init_params(tiny_cfg), {"thresholds": [0.0]})
    for seed in range(3):
        write_episode(root / "frames" / "test", make_episode(seed, tiny_cfg))
    args = ["bench", "reward", "--json", "--root", str(tmp_path / "reward"), "--names", "toy", "missing"]
    assert main([*args, "--repeats", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    toy = result["tasks"]["pick_cube"]
    # threshold 0 calls every frame success: precision = the share of success frames, recall 1
    # frames 7 and 8 of each episode sit next to the label change: ambiguous, left out of the headline
    assert toy["ambiguous_frames"] == 6 and toy["strict_precision"] == round(12 / 36, 4)
    assert toy["precision"] == result["precision_pick_cube"] == round(9 / 30, 4)
    assert toy["recall"] == result["recall_pick_cube"] == 1.0 and toy["test_episodes"] == 3
    assert "no classifier at" in result["tasks"]["missing"]["error"]
    assert result["inference_ms_median"] > 0 and result["timed_model"] == "trained"


def test_speed_only_times_a_random_default_model(capsys) -> None:
    assert main(["bench", "reward", "--speed-only", "--json", "--repeats", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["timed_model"] == "random (default config)"
    assert result["inference_ms_median"] > 0 and result["network_only_ms_median"] > 0
    assert "tasks" not in result


def test_the_classifier_sees_every_camera_of_its_task_unless_told_otherwise() -> None:
    import argparse

    from pld_reward.cli import classifier_config

    def cameras(task: str, *overrides: str) -> tuple[str, ...]:
        return classifier_config(argparse.Namespace(task=task, config=list(overrides))).cameras

    assert cameras("pick_cube") == ("side", "wrist")
    assert cameras("peg_insertion") == ("side", "wrist", "fixture")  # its fixture-mounted camera
    assert cameras("gpu_insertion") == ("side", "wrist")
    assert cameras("peg_insertion", 'cameras=["wrist", "fixture"]') == ("wrist", "fixture")
    with pytest.raises(ValueError, match="list of names"):
        cameras("peg_insertion", "cameras=fixture")
