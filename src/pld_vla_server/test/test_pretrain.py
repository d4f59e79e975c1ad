"""`pld pretrain`: configuration, and the smoke budget end to end (collect, train both heads, evaluate)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pld_residual.cli.main import build_parser
from pld_vla_server.collect_demos import DemoConfig
from pld_vla_server.dataset import load_episodes, manifest_records
from pld_vla_server.pretrain import (
    BUDGETS,
    PLOT,
    SUMMARY,
    TRAIN_REPORT,
    PretrainConfig,
    config_from_args,
    estimate_idle_wall_time,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["pretrain", *argv])


def test_budget_presets_and_overrides() -> None:
    default = config_from_args(parse())
    assert default.demos.tasks == ("pick_cube", "peg_insertion") and default.heads == ("flow", "ar")
    assert default.demos.demos_per_task == BUDGETS["default"]["demos_per_task"]
    assert default.eval_episodes == 50 and default.demos.noise > 0
    smoke = config_from_args(parse("--budget", "smoke"))
    assert smoke.eval_episodes == 2 and smoke.steps < 100 and smoke.demos.demos_per_task <= 3
    custom = config_from_args(
        parse(
            "--tasks", "pick_cube", "--heads", "ar", "--steps", "7", "--no-eval", "--model", "trunk_hidden=64"
        )
    )
    assert custom.demos.tasks == ("pick_cube",) and custom.heads == ("ar",) and custom.steps == 7
    assert custom.eval_episodes == 0 and custom.model["trunk_hidden"] == 64
    assert config_from_args(parse("--execute-steps", "0")).execute_steps is None
    assert default.demos.labels == "executed"
    dart = config_from_args(parse("--labels", "intended"))
    assert dart.demos.labels == "intended" and dart.demos.cache_key() != default.demos.cache_key()


def test_demo_counts_per_task_from_the_command_line() -> None:
    default = config_from_args(parse()).demos
    assert default.task_demos == BUDGETS["default"]["task_demos"] == {"pick_cube": 40}
    assert (default.demos_for("pick_cube"), default.demos_for("peg_insertion")) == (40, 300)
    one = config_from_args(parse("--demos-per-task", "pick_cube=20")).demos
    assert (one.demos_for("pick_cube"), one.demos_for("peg_insertion")) == (20, 300)
    both = config_from_args(parse("--demos-per-task", "40", "peg_insertion=7")).demos
    assert (both.demos_for("pick_cube"), both.demos_for("peg_insertion")) == (40, 7)
    flat = config_from_args(parse("--demos-per-task", "50")).demos  # a bare N alone means every task
    assert flat.task_demos == {} and flat.total_demos == 100
    peg_only = config_from_args(parse("--tasks", "peg_insertion")).demos  # the pick_cube count is dropped
    assert peg_only.task_demos == {} and peg_only.total_demos == 300
    for bad, message in (
        (["1", "2"], "one N"),
        (["cube=3"], "not in"),
        (["pick_cube=0"], "positive"),
        (["many"], "positive"),
    ):
        with pytest.raises(SystemExit, match=message):
            config_from_args(parse("--demos-per-task", *bad))


def test_training_options_for_one_head() -> None:
    cfg = config_from_args(parse("--train-option", "ar:state_loss_weight=2", "--train-option", "shift_pad=0"))
    assert cfg.train_options_for("ar") == {"shift_pad": 0, "state_loss_weight": 2}
    assert cfg.train_options_for("flow") == {"shift_pad": 0}
    plain = config_from_args(parse("--train-option", "shift_pad=0"))
    assert cfg.train_key("flow") == plain.train_key("flow")  # the flow checkpoint can be reused
    assert cfg.train_key("ar") != plain.train_key("ar")
    assert PretrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(SystemExit, match="HEAD:KEY"):
        config_from_args(parse("--train-option", "diffusion:steps=3"))
    # model overrides per head: the default AR head predicts only the rows that run before re-planning
    default = config_from_args(parse())
    assert default.model_config("ar")["horizon"] == default.execute_steps == 4
    assert "horizon" not in default.model_config("flow")
    wide = config_from_args(parse("--model", "ar:horizon=6", "--model", "trunk_hidden=64"))
    assert wide.model_config("ar") == {"horizon": 6, "trunk_hidden": 64, "head": "ar", "seed": 0}
    assert wide.model_config("flow") == {"trunk_hidden": 64, "head": "flow", "seed": 0}
    with pytest.raises(ValueError, match="must not set"):
        PretrainConfig(head_train_options={"ar": {"steps": 3}})


def test_config_round_trip_and_training_identity() -> None:
    cfg = PretrainConfig(demos=DemoConfig(demos_per_task=3), steps=10, model={"trunk_hidden": 64})
    assert PretrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.train_key("flow") != cfg.train_key("ar")
    assert cfg.train_key("flow") != PretrainConfig(demos=cfg.demos, steps=11, model=cfg.model).train_key(
        "flow"
    )
    # evaluation settings do not change what is trained
    same = PretrainConfig(demos=cfg.demos, steps=10, model=cfg.model, eval_episodes=3, execute_steps=None)
    assert same.train_key("flow") == cfg.train_key("flow")
    with pytest.raises(ValueError):
        PretrainConfig(heads=("transformer",))
    with pytest.raises(ValueError):
        PretrainConfig(model={"head": "ar"})
    with pytest.raises(ValueError):
        PretrainConfig(eval_first_seed=5)


def test_parallel_collection_gives_the_sequential_dataset(tmp_path: Path) -> None:
    import pld_vla_server.pretrain_runner as runner
    from pld_vla_server.collect_demos import collect_demos

    demos = DemoConfig(tasks=("pick_cube",), demos_per_task=3, block_size=2, noise=0.1, image_size=32)
    report = runner.collect_in_parallel(
        PretrainConfig(demos=demos),
        tmp_path / "parallel",
        workers=2,
        bars=runner.ProgressBars(enabled=False),
    )
    sequential = collect_demos(demos, tmp_path / "sequential", progress=False)
    assert report["per_task"]["pick_cube"]["seeds"] == sequential["per_task"]["pick_cube"]["seeds"]
    assert manifest_records(tmp_path / "parallel") == manifest_records(tmp_path / "sequential")
    assert not list((tmp_path / "parallel").glob("*.report.json"))  # block reports merged, then removed
    for a, b in zip(
        load_episodes(tmp_path / "parallel"), load_episodes(tmp_path / "sequential"), strict=True
    ):
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.images["wrist"], b.images["wrist"])


def test_idle_time_estimate_replays_the_schedule() -> None:
    summary = {
        "data": {"per_task": {"a": {"cpu_time_s": 10.0}, "b": {"cpu_time_s": 6.0}}},
        "config": {"heads": ["flow", "ar"]},
        "heads": {
            "flow": {"trained": True, "train_cpu_time_s": 100.0, "eval": {"a": {"cpu_time_s": 30.0}}},
            "ar": {"trained": True, "train_cpu_time_s": 150.0, "eval": {"a": {"cpu_time_s": 40.0}}},
        },
    }
    # two lanes: tasks collected side by side (10); flow 100 + its eval 30 = 130 while ar trains to 150,
    # then ar's eval 40 -> 190
    assert estimate_idle_wall_time(summary, workers=2) == 10.0 + 190.0
    assert estimate_idle_wall_time(summary, workers=1) == 16.0 + 320.0
    # an evaluation in two parts of 20: both lanes are free at 150 and 130, so they end at 170 and 150
    summary["heads"]["ar"]["eval"]["a"]["parts_cpu_time_s"] = [20.0, 20.0]
    assert estimate_idle_wall_time(summary, workers=2) == 10.0 + 170.0
    summary["heads"]["ar"]["trained"] = False
    assert estimate_idle_wall_time(summary, workers=2) is None


@pytest.mark.slow
def test_smoke_budget_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "base_vla"
    cmd = [
        sys.executable,
        "-m",
        "pld_residual.cli",
        "pretrain",
        "--budget",
        "smoke",
        "--out",
        str(out),
        "--quiet",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    summary = json.loads((out / SUMMARY).read_text())
    assert summary["complete"] and not summary["errors"]
    assert (out / PLOT).read_bytes()[:8] == PNG_MAGIC
    assert summary["data"]["episodes"] == 2 * BUDGETS["smoke"]["demos_per_task"]

    from pld_sim import make
    from pld_vla_server.evaluation import to_vla_observation
    from pld_vla_server.small_vla import SmallVLABackend

    obs, _ = make("pick_cube").reset(seed=0)
    for head in ("flow", "ar"):
        entry = summary["heads"][head]
        assert entry["trained"] and entry["steps"] == BUDGETS["smoke"]["steps"]
        record = json.loads((out / head / TRAIN_REPORT).read_text())
        assert record["data"]["dataset"] == summary["data"]["dataset"]
        assert record["data"]["per_task"]["pick_cube"]["seeds"] == [0, 1]
        assert len(record["losses"]) == BUDGETS["smoke"]["steps"] and "wall_time_s" in record
        assert "git" in record
        backend = SmallVLABackend.load(out / head)
        assert backend.config.head == head and backend.model_id == entry["model_id"]
        chunk = backend.predict(to_vla_observation(obs))
        assert chunk.actions.shape == (10, 7) and np.all(np.isfinite(chunk.actions))
        for task in ("pick_cube", "peg_insertion"):
            evaluation = entry["eval"][task]
            assert evaluation["episodes"] == 2 and len(evaluation["per_seed"]) == 2
            assert [s[0] for s in evaluation["per_seed"]] == [10_000, 10_001]
            low, high = evaluation["success_rate_ci95"]
            assert 0.0 <= low <= evaluation["success_rate"] <= high <= 1.0

    # an evaluation in parts (as `pld pretrain` runs them side by side) merges into the single-job result
    import pld_vla_server.pretrain_jobs as jobs

    cfg = PretrainConfig.from_dict(summary["config"])
    single_path = out / "flow" / "eval" / "pick_cube.json"
    single = json.loads(single_path.read_text())
    single_path.rename(tmp_path / "single.json")
    monkeypatch.setattr(jobs, "EVAL_PART_EPISODES", 1)
    assert jobs.eval_parts(cfg.eval_episodes) == 2
    first = jobs.evaluate_head(cfg, "flow", "pick_cube", out, None, 0, 2)
    assert first["episodes"] == 1 and jobs.merge_eval_parts(cfg, "flow", "pick_cube", out) is None
    jobs.evaluate_head(cfg, "flow", "pick_cube", out, None, 1, 2)
    merged = jobs.merge_eval_parts(cfg, "flow", "pick_cube", out)
    assert merged is not None and not list((out / "flow" / "eval").glob("*.part*"))
    for key in ("episodes", "successes", "success_rate", "success_rate_ci95", "mean_length_steps", "key"):
        assert merged[key] == single[key], key
    assert [(o["seed"], o["success"], o["length"]) for o in merged["per_seed"]] == [
        (o["seed"], o["success"], o["length"]) for o in single["per_seed"]
    ]
    assert merged["config"] == single["config"] and len(merged["parts_cpu_time_s"]) == 2
    monkeypatch.undo()
    (tmp_path / "single.json").replace(single_path)  # the rerun below compares with the first summary

    # the same command again reuses everything that is finished: no collection, training or evaluation
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "demos: reused" in again.stdout
    rerun = json.loads((out / SUMMARY).read_text())
    for head in ("flow", "ar"):
        assert rerun["heads"][head]["model_id"] == summary["heads"][head]["model_id"]
        assert rerun["heads"][head]["eval"] == summary["heads"][head]["eval"]


def test_a_silent_worker_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    """`kill -9` of `pld pretrain` must not leave a worker training for minutes; a worker that prints
    dies of the broken pipe anyway, so this one stays silent (as while it loads a large dataset)."""
    import os
    import signal
    import time

    pid_file = tmp_path / "worker.pid"
    worker = (
        "import os, time; from pld_vla_server.pretrain_runner import _exit_with_parent; "
        f"_exit_with_parent(0.1); open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    parent_code = (
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {worker!r}]); time.sleep(120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    parent.send_signal(signal.SIGKILL)
    parent.wait(30)
    assert pid_file.exists(), "the worker did not start"
    pid = int(pid_file.read_text())

    def alive() -> bool:
        try:
            return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()  # a zombie has exited
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    still_running = alive()
    if still_running:  # our own worker, by PID: a failing test leaves nothing behind
        os.kill(pid, signal.SIGKILL)
    assert not still_running, "the worker kept running after its parent was killed"
