"""`pld bench rl` curves mode: aggregation over seeds, the PLD-vs-baselines comparison, reuse of runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pld_residual.learning.benchmark import (
    RESULT_JSON,
    RESULT_PNG,
    CurveBenchConfig,
    aggregate,
    aggregate_method,
    learn_command,
    run_all,
    run_dir,
    value_at,
)
from pld_residual.learning.curve import write_curve


def _points(rates: list[float], every: int = 10_000, episodes: int = 10) -> list[dict]:
    common = {"ci95": [0.0, 1.0], "wall_time_s": 1.0, "eval_episodes": episodes}
    return [{"env_steps": i * every, "success_rate": r, **common} for i, r in enumerate(rates)]


def _write_run(out: Path, method: str, seed: int, rates: list[float], complete: bool = True) -> None:
    directory = run_dir(out, method, seed)
    directory.mkdir(parents=True)
    write_curve(directory, _points(rates), f"{method} {seed}")
    (directory / "summary.json").write_text(json.dumps({"complete": complete, "wall_time_s": 12.5}))


def test_mean_over_seeds_and_pooled_interval_by_hand() -> None:
    result = aggregate_method({0: _points([0.2, 0.6]), 1: _points([0.4, 1.0, 1.0])}, 10_000)
    rows = result["points"]
    assert [row["env_steps"] for row in rows] == [0, 10_000]  # only the steps both seeds reached
    assert rows[0]["mean"] == pytest.approx(0.3) and rows[1]["mean"] == pytest.approx(0.8)
    assert rows[1]["per_seed"] == [0.6, 1.0] and rows[1]["episodes"] == 20
    # 16 of 20 pooled episodes: Wilson 95 % interval 0.584 .. 0.919
    assert rows[1]["ci95"] == pytest.approx([0.584, 0.919], abs=1e-3)


def test_seeds_evaluating_a_few_steps_apart_are_matched_on_the_interval() -> None:
    late = _points([0.0, 0.5, 1.0])
    for point, offset in zip(late, (0, 169, 31), strict=True):
        point["env_steps"] += offset  # evaluations happen at the first episode end past each multiple
    result = aggregate_method({0: _points([0.0, 0.7, 0.8]), 1: late}, 10_000)
    assert [row["env_steps"] for row in result["points"]] == [0, 10_000, 20_000]
    assert result["points"][1]["per_seed"] == [0.7, 0.5]


def test_value_at_takes_the_last_evaluation_not_after_the_step() -> None:
    result = aggregate_method({0: _points([0.1, 0.5, 0.9])}, 10_000)
    assert value_at(result, 15_000) == pytest.approx(0.5)
    assert value_at(result, 20_000) == pytest.approx(0.9)
    assert value_at({"points": []}, 5) is None


def test_aggregate_compares_pld_with_every_baseline(tmp_path: Path) -> None:
    cfg = CurveBenchConfig(methods=("pld", "sac", "jsrl"), seeds=(0, 1), pld_steps=30_000, compare_at=20_000)
    for seed in (0, 1):
        _write_run(tmp_path, "pld", seed, [0.5, 0.8, 0.9, 1.0])
        _write_run(tmp_path, "sac", seed, [0.0, 0.0, 0.1])
    _write_run(tmp_path, "jsrl", 0, [0.5, 0.7, 0.95])  # seed 1 missing
    result = aggregate(cfg, tmp_path)
    comparison = result["comparison"]
    assert comparison["success_at_compare"] == {"pld": 0.9, "sac": 0.1, "jsrl": 0.95}
    assert comparison["pld_ahead_of_every_baseline"] is False  # jsrl's one seed is ahead
    assert comparison["pld_first_step_at_target"] == 30_000
    assert comparison["pld_reaches_target_within_budget"] is True
    assert result["missing_runs"] == ["jsrl/seed1"]
    assert result["methods"]["pld"]["wall_time_s"] == {0: 12.5, 1: 12.5}
    assert (tmp_path / RESULT_PNG).stat().st_size > 0
    assert json.loads((tmp_path / RESULT_JSON).read_text())["comparison"] == json.loads(
        json.dumps(comparison)
    )


def test_learn_command_carries_the_budget_and_overrides(tmp_path: Path) -> None:
    learn = {"probing_alpha": 0.2, "agent": {"hidden": 64}}
    cfg = CurveBenchConfig(
        seeds=(3,), pld_steps=500, baseline_steps=200, base="/b", learn=learn, config_file="c.yaml"
    )
    pld = learn_command(cfg, tmp_path, "pld", 3)
    assert pld[:4] == [sys.executable, "-m", "pld_residual.cli", "learn"]
    assert pld[pld.index("--steps") + 1] == "500" and pld[pld.index("--seed") + 1] == "3"
    assert pld[pld.index("--out") + 1] == str(tmp_path / "pld" / "seed3")
    assert "--config=probing_alpha=0.2" in pld and "--config=agent.hidden=64" in pld
    assert pld[pld.index("--config-file") + 1] == str(Path("c.yaml").resolve())
    assert pld.index("--config-file") < pld.index("--config=probing_alpha=0.2")
    assert "--config=eval_at_start=false" not in pld
    sac = learn_command(cfg, tmp_path, "sac", 3)
    assert sac[sac.index("--steps") + 1] == "200" and sac[sac.index("--eval-every") + 1] == "10000"
    assert "--config=eval_at_start=false" in sac


def test_finished_runs_are_reused_without_starting_anything(tmp_path: Path) -> None:
    cfg = CurveBenchConfig(methods=("pld", "sac"), seeds=(0,))
    _write_run(tmp_path, "pld", 0, [0.5])
    _write_run(tmp_path, "sac", 0, [0.0])
    records = run_all(cfg, tmp_path, progress=False)
    assert sorted((r["method"], r["status"]) for r in records) == [("pld", "reused"), ("sac", "reused")]
    assert not (run_dir(tmp_path, "pld", 0) / "learn.log").exists()
