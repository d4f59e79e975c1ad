"""Scripted-expert demo collection writes a valid, seeded dataset of successful episodes only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pld_sim.expert_eval import ExpertEvalConfig, evaluate_expert
from pld_vla_server.collect_demos import (
    COLLECTION_REPORT,
    EVAL_FIRST_SEED,
    DemoConfig,
    cached_or_collect,
    collect_demos,
)
from pld_vla_server.dataset import MANIFEST, load_episodes, manifest_records


def test_collection_keeps_only_successes_and_records_the_settings(tmp_path: Path) -> None:
    # at noise 0.8 the pick_cube expert fails now and then (seed 2 of the first four): it must be dropped
    cfg = DemoConfig(tasks=("pick_cube",), demos_per_task=3, noise=0.8, hesitation=0.1, image_size=64)
    report = collect_demos(cfg, tmp_path / "demos", progress=False)
    task = report["per_task"]["pick_cube"]
    assert task["kept"] == 3 and report["episodes"] == 3
    assert task["discarded"] >= 1, "expected at least one failed attempt at this noise"
    assert task["attempts"] == task["kept"] + task["discarded"] == report["discarded"] + 3

    records = manifest_records(tmp_path / "demos")
    assert [r["seed"] for r in records] == task["seeds"]
    attempted = set(range(task["attempts"]))
    failed = sorted(attempted - set(task["seeds"]))
    assert len(failed) == task["discarded"]
    for record in records:
        assert record["success"] and record["task"] == "pick_cube"
        assert record["instruction"] == "pick up the blue cube"
        assert record["meta"] == {
            "noise": 0.8,
            "hesitation": 0.1,
            "seed": record["seed"],
            "expert": "pick_cube",
            "labels": "executed",
        }
    # the discarded seeds really are expert failures (checked without cameras, same physics)
    for seed in failed:
        result = evaluate_expert(
            ExpertEvalConfig("pick_cube", episodes=1, first_seed=seed, noise=0.8, hesitation=0.1)
        )
        assert result["successes"] == 0

    episodes = load_episodes(tmp_path / "demos", only_successful=False)
    assert len(episodes) == 3
    for episode, record in zip(episodes, records, strict=True):
        assert len(episode) == record["length"] > 5
        assert episode.images["side"].shape == (len(episode), 64, 64, 3)
        assert episode.images["wrist"].dtype == np.uint8
        assert episode.proprio.shape == (len(episode), 15)
        assert np.all(np.abs(episode.actions[:, :3]) <= 0.02 + 1e-6)
        # the cube's pose at every step (auxiliary pretraining target): starts on the table, ends lifted
        assert episode.privileged.shape == (len(episode), 8)
        assert episode.privileged[-1, 2] > episode.privileged[0, 2] + 0.02
    saved = json.loads((tmp_path / "demos" / COLLECTION_REPORT).read_text())
    assert saved["config"] == cfg.to_dict()


def test_cache_reuses_the_same_settings_and_not_others(tmp_path: Path) -> None:
    cfg = DemoConfig(tasks=("pick_cube",), demos_per_task=1, noise=0.1, image_size=32)
    first, report, reused = cached_or_collect(cfg, tmp_path, progress=False)
    assert not reused and (first / MANIFEST).exists() and report["episodes"] == 1
    again, _, reused = cached_or_collect(cfg, tmp_path, progress=False)
    assert reused and again == first
    other, _, reused = cached_or_collect(
        DemoConfig.from_dict({**cfg.to_dict(), "noise": 0.2}), tmp_path, False
    )
    assert not reused and other != first
    assert not list(tmp_path.glob("*.partial"))


def test_config_keeps_demo_seeds_below_the_evaluation_seeds() -> None:
    with pytest.raises(ValueError, match="evaluation seeds"):
        DemoConfig(demos_per_task=10, first_seed=EVAL_FIRST_SEED - 5)
    with pytest.raises(ValueError):
        DemoConfig(demos_per_task=0)
    with pytest.raises(ValueError, match="unknown"):
        DemoConfig.from_dict({"demos": 3})
    assert DemoConfig().cache_key() != DemoConfig(noise=0.2).cache_key()


def test_per_task_counts_collect_that_many_of_each_task(tmp_path: Path) -> None:
    cfg = DemoConfig(
        tasks=("pick_cube", "peg_insertion"), demos_per_task=1, task_demos={"pick_cube": 2}, image_size=32
    )
    assert (cfg.demos_for("pick_cube"), cfg.demos_for("peg_insertion"), cfg.total_demos) == (2, 1, 3)
    assert [b.max_attempts for b in cfg.blocks("pick_cube") + cfg.blocks("peg_insertion")] == [8, 4]
    report = collect_demos(cfg, tmp_path / "demos", progress=False)
    assert {task: r["kept"] for task, r in report["per_task"].items()} == {"pick_cube": 2, "peg_insertion": 1}
    assert [r["task"] for r in manifest_records(tmp_path / "demos")] == ["pick_cube"] * 2 + ["peg_insertion"]
    # a per-task count is part of the cache key; without one the key is what it was before the option
    plain = DemoConfig(tasks=cfg.tasks, demos_per_task=1, image_size=32)
    assert "task_demos" not in plain.to_dict() and plain.cache_key() != cfg.cache_key()
    assert cfg.cache_key().startswith("pick_cube2+peg_insertion-n1-")
    assert DemoConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="not collected"):
        DemoConfig(tasks=("peg_insertion",), task_demos={"pick_cube": 3})
    with pytest.raises(ValueError, match="at least 1"):
        DemoConfig(task_demos={"pick_cube": 0})


def test_blocks_own_disjoint_seed_ranges_and_make_one_dataset(tmp_path: Path) -> None:
    cfg = DemoConfig(tasks=("pick_cube",), demos_per_task=3, block_size=2, image_size=32)
    blocks = cfg.blocks("pick_cube")
    assert [(b.index, b.wanted, b.first_seed, b.max_attempts) for b in blocks] == [(0, 2, 0, 8), (1, 1, 8, 4)]
    assert cfg.block_stride == 8 and cfg.seed_span == 16
    report = collect_demos(cfg, tmp_path / "demos", progress=False)
    task = report["per_task"]["pick_cube"]
    assert task["seeds"] == [0, 1, 8] and task["seed_ranges"] == [[0, 1], [8, 8]]
    assert len(task["blocks_cpu_time_s"]) == 2 and task["attempts"] == 3
    records = manifest_records(tmp_path / "demos")
    assert [r["file"].rsplit("/", 1)[0] for r in records] == ["pick_cube/b0", "pick_cube/b0", "pick_cube/b1"]
    assert [e.seed for e in load_episodes(tmp_path / "demos")] == [0, 1, 8]
    with pytest.raises(ValueError, match="evaluation seeds"):  # 40 blocks of 75 demos need 12 000 seeds
        DemoConfig(demos_per_task=3000)


def test_a_second_collector_of_the_same_dataset_waits_and_reuses_it(tmp_path: Path) -> None:
    """Two `pld pretrain` runs with the same demo settings: one collects, the other waits for it."""
    import threading
    import time

    cfg = DemoConfig(tasks=("pick_cube",), demos_per_task=1, noise=0.1, image_size=32)
    started, calls = threading.Event(), []

    def slow_collector(c: DemoConfig, directory: Path) -> dict:
        calls.append(directory)
        started.set()
        time.sleep(0.5)  # the second caller arrives while this one is still writing
        return collect_demos(c, directory, progress=False)

    results = {}

    def run(name: str) -> None:
        results[name] = cached_or_collect(cfg, tmp_path, progress=False, collector=slow_collector)

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=run, args=("second",))
    second.start()
    first.join(60)
    second.join(60)
    assert len(calls) == 1, "the dataset was collected twice"
    assert results["first"][2] is False and results["second"][2] is True
    assert results["first"][0] == results["second"][0]


def test_intended_labels_teach_the_correction_while_the_noisy_action_runs() -> None:
    import pld_sim
    from pld_vla_server.collect_demos import run_expert_episode

    env = pld_sim.make("pick_cube", image_size=64, render_images=True)
    intended = run_expert_episode(env, "pick_cube", 5, noise=0.3, hesitation=0.0, labels="intended")
    executed = run_expert_episode(env, "pick_cube", 5, noise=0.3, hesitation=0.0, labels="executed")
    # the same seed runs the same noisy actions: identical states, only the recorded labels differ
    np.testing.assert_array_equal(intended.proprio, executed.proprio)
    np.testing.assert_array_equal(intended.images["wrist"], executed.images["wrist"])
    assert intended.meta["labels"] == "intended" and executed.meta["labels"] == "executed"
    difference = executed.actions[:, :6] - intended.actions[:, :6]
    high = env.cfg.limits.high[:6]
    # where neither is clipped, the difference is the Gaussian noise: std 0.3 of the limit per dimension
    free = (np.abs(intended.actions[:, :6]) < 0.9 * high) & (np.abs(executed.actions[:, :6]) < 0.99 * high)
    ratio = (difference / high)[free]
    assert ratio.size > 50 and 0.2 < ratio.std() < 0.4, (ratio.size, ratio.std())
    np.testing.assert_array_equal(intended.actions[:, 6], executed.actions[:, 6])  # no gripper noise
    # the executed actions really are what ran: replaying them reproduces the episode's states
    obs, _ = env.reset(seed=5)
    for t, action in enumerate(executed.actions[:20]):
        np.testing.assert_allclose(obs["proprio"], executed.proprio[t], atol=1e-6)
        obs, *_ = env.step(action)
    with pytest.raises(ValueError, match="labels"):
        DemoConfig(labels="noisy")
