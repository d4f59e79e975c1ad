"""Learning curves of PLD and its baselines on one task, several seeds: `pld bench rl` (curves mode).

Every (method, seed) is one ordinary `pld learn` run in `<out>/<method>/seed<k>/`, started as its own
process (at most `jobs` side by side), so an interrupted benchmark resumes each run from its checkpoint
and a finished run is reused as it is. `aggregate` reads the runs' `curve.json` files back:

- at every evaluation step all seeds of a method share, the mean success rate over the seeds;
- a 95 % interval from the episodes of all seeds pooled (Wilson). With 2-3 seeds a t-interval over seed
  means is wider than the [0, 1] range, so the pooled interval (evaluation noise only) is given and the
  seeds' own rates are listed beside it for their spread;
- the comparison the issue asks for: PLD against every baseline at `compare_at` steps, and the first
  step at which PLD's mean reaches `target` (0.95).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pld_residual.agent.io import atomic_write
from pld_residual.learning.curve import CURVE_JSON
from pld_residual.learning.evaluation import wilson_interval

RESULT_JSON = "bench_rl.json"
RESULT_PNG = "bench_rl.png"
BASELINES = ("rlpd", "wsrl", "jsrl", "sac")


@dataclass(frozen=True)
class CurveBenchConfig:
    """Which runs make up the benchmark; `learn` overrides apply to every method (agent keys included)."""

    task: str = "pick_cube"
    methods: tuple[str, ...] = ("pld", *BASELINES)
    seeds: tuple[int, ...] = (0, 1)
    pld_steps: int = 50_000
    baseline_steps: int = 20_000  # the comparison point; baselines stop there to fit the CPU budget
    eval_every: int = 5_000
    # baselines act alone from a zero-initialised actor, so at 0 steps they stand still (0 %) and most of
    # their evaluation episodes run to the time limit: they are evaluated less often, from this interval on
    baseline_eval_every: int = 10_000
    eval_episodes: int = 50
    compare_at: int = 20_000
    target: float = 0.95
    jobs: int = 2
    base: str | None = None
    config_file: str | None = (
        None  # `pld learn --config-file` for every run (e.g. config/learn_pick_cube.yaml)
    )
    learn: dict[str, Any] = field(default_factory=dict)

    def steps(self, method: str) -> int:
        return self.pld_steps if method == "pld" else self.baseline_steps

    def eval_interval(self, method: str) -> int:
        return self.eval_every if method == "pld" else self.baseline_eval_every


def run_dir(out: Path, method: str, seed: int) -> Path:
    return out / method / f"seed{seed}"


def learn_command(cfg: CurveBenchConfig, out: Path, method: str, seed: int) -> list[str]:
    """The `pld learn` command line of one run (what a user would type to redo it)."""
    cmd = [sys.executable, "-m", "pld_residual.cli", "learn", "--quiet", "--task", cfg.task]
    cmd += ["--method", method, "--seed", str(seed), "--steps", str(cfg.steps(method))]
    cmd += ["--eval-every", str(cfg.eval_interval(method)), "--eval-episodes", str(cfg.eval_episodes)]
    cmd += ["--out", str(run_dir(out, method, seed))]
    if method != "pld":
        cmd.append("--config=eval_at_start=false")
    if cfg.base is not None:
        cmd += ["--base", cfg.base]
    if cfg.config_file is not None:
        cmd += ["--config-file", str(Path(cfg.config_file).resolve())]
    for key, value in cfg.learn.items():
        if key == "agent":
            cmd += [f"--config=agent.{k}={json.dumps(v)}" for k, v in value.items()]
        else:
            cmd.append(f"--config={key}={json.dumps(value)}")
    return cmd


def _summary(directory: Path) -> dict[str, Any]:
    path = directory / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def is_complete(directory: Path) -> bool:
    return bool(_summary(directory).get("complete"))


def run_all(cfg: CurveBenchConfig, out: Path, progress: bool = True) -> list[dict[str, Any]]:
    """Run every missing or unfinished (method, seed), `cfg.jobs` at a time; returns one record per run."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "bench_config.json", (json.dumps(asdict(cfg), indent=2) + "\n").encode())
    todo = [(m, s) for m in cfg.methods for s in cfg.seeds if not is_complete(run_dir(out, m, s))]
    records = [
        {"method": m, "seed": s, "status": "reused"}
        for m in cfg.methods
        for s in cfg.seeds
        if (m, s) not in todo
    ]
    running: list[tuple[str, int, subprocess.Popen, float]] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        while todo or running:
            while todo and len(running) < cfg.jobs:
                method, seed = todo.pop(0)
                directory = run_dir(out, method, seed)
                directory.mkdir(parents=True, exist_ok=True)
                log = open(directory / "learn.log", "ab")  # noqa: SIM115 (closed with the process)
                proc = subprocess.Popen(
                    learn_command(cfg, out, method, seed), stdout=log, stderr=log, env=env
                )
                log.close()
                running.append((method, seed, proc, time.perf_counter()))
                if progress:
                    print(f"pld bench rl: started {method} seed {seed} (pid {proc.pid})", file=sys.stderr)
            time.sleep(2.0)
            for item in list(running):
                method, seed, proc, started = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                status = "done" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
                elapsed = round(time.perf_counter() - started, 1)
                records.append({"method": method, "seed": seed, "status": status, "wall_time_s": elapsed})
                if progress:
                    log = run_dir(out, method, seed) / "learn.log"
                    print(
                        f"pld bench rl: {method} seed {seed} {status} in {elapsed:.0f} s ({log})",
                        file=sys.stderr,
                    )
    except KeyboardInterrupt:
        for _, _, proc, _ in running:
            proc.terminate()  # SIGTERM: each run checkpoints; re-running the benchmark resumes it
        for _, _, proc, _ in running:
            proc.wait()
        raise
    return records


def _load_curve(directory: Path) -> list[dict[str, Any]] | None:
    path = directory / CURVE_JSON
    return json.loads(path.read_text())["points"] if path.is_file() else None


def aggregate_method(curves: dict[int, list[dict[str, Any]]], interval: int) -> dict[str, Any]:
    """Mean over seeds and pooled Wilson interval at every evaluation step all seeds reached.

    A run evaluates at the first episode end at or past each multiple of `interval`, so seeds evaluate a
    few steps apart (5031, 5169, ...); points are matched on that multiple, which is the step reported.
    """
    by_seed = {
        seed: {p["env_steps"] // interval * interval: p for p in points} for seed, points in curves.items()
    }
    common = sorted(set.intersection(*(set(points) for points in by_seed.values()))) if by_seed else []
    rows = []
    for step in common:
        points = [by_seed[seed][step] for seed in sorted(by_seed)]
        successes = sum(round(p["success_rate"] * p["eval_episodes"]) for p in points)
        episodes = sum(p["eval_episodes"] for p in points)
        low, high = wilson_interval(successes, episodes)
        rows.append({
            "env_steps": step,
            "mean": round(sum(p["success_rate"] for p in points) / len(points), 4),
            "ci95": [round(low, 4), round(high, 4)],
            "per_seed": [p["success_rate"] for p in points],
            "episodes": episodes,
        })  # fmt: skip
    return {"seeds": sorted(by_seed), "points": rows}


def value_at(method_result: dict[str, Any], step: int) -> float | None:
    """The mean success at the last evaluation at or before `step` (None before the first one)."""
    before = [row for row in method_result["points"] if row["env_steps"] <= step]
    return before[-1]["mean"] if before else None


def aggregate(cfg: CurveBenchConfig, out: Path) -> dict[str, Any]:
    """Read every run's curve back and compare the methods; writes `bench_rl.json` and `bench_rl.png`."""
    methods: dict[str, Any] = {}
    missing = []
    for method in cfg.methods:
        curves, summaries = {}, {}
        for seed in cfg.seeds:
            directory = run_dir(out, method, seed)
            points = _load_curve(directory)
            if points is None:
                missing.append(f"{method}/seed{seed}")
                continue
            curves[seed] = points
            summaries[seed] = _summary(directory)
        result = aggregate_method(curves, cfg.eval_interval(method))
        result["complete_seeds"] = [s for s in curves if summaries[s].get("complete")]
        walls = {seed: summary.get("wall_time_s") for seed, summary in summaries.items()}
        result["wall_time_s"] = walls
        methods[method] = result
    pld = methods.get("pld")
    comparison = None
    if pld is not None and pld["points"]:
        at = {m: value_at(r, cfg.compare_at) for m, r in methods.items() if r["points"]}
        reached = [row["env_steps"] for row in pld["points"] if row["mean"] >= cfg.target]
        comparison = {
            "compare_at": cfg.compare_at,
            "success_at_compare": at,
            "pld_ahead_of_every_baseline": all(
                at["pld"] is not None and value is not None and at["pld"] > value
                for m, value in at.items()
                if m != "pld"
            ),
            "target": cfg.target,
            "pld_first_step_at_target": reached[0] if reached else None,
            "pld_reaches_target_within_budget": bool(reached) and reached[0] <= cfg.pld_steps,
        }
    result = {
        "task": cfg.task,
        "seeds": list(cfg.seeds),
        "methods": methods,
        "comparison": comparison,
        "missing_runs": missing,
        "config": asdict(cfg),
    }
    atomic_write(out / RESULT_JSON, (json.dumps(result, indent=2) + "\n").encode())
    plot(out / RESULT_PNG, result, cfg)
    return result


def plot(path: Path, result: dict[str, Any], cfg: CurveBenchConfig) -> None:
    """One figure: mean success per method over env steps, pooled 95 % band, target and comparison lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for method, data in result["methods"].items():
        rows = data["points"]
        if not rows:
            continue
        steps = [row["env_steps"] for row in rows]
        label = f"{method} ({len(data['seeds'])} seed{'s' if len(data['seeds']) != 1 else ''})"
        line = ax.plot(steps, [row["mean"] for row in rows], marker="o", ms=3, label=label)[0]
        low = [row["ci95"][0] for row in rows]
        high = [row["ci95"][1] for row in rows]
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
    ax.axhline(cfg.target, color="grey", lw=0.8, ls="--", label=f"target {cfg.target:.0%}")
    ax.axvline(cfg.compare_at, color="grey", lw=0.8, ls=":", label=f"comparison at {cfg.compare_at} steps")
    ax.set_xlabel("online env steps")
    ax.set_ylabel("success rate (deterministic eval)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{result['task']}: mean over seeds, band = pooled 95 % CI")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
