"""`pld bench rl`: learning curves of PLD and the baselines (default), or `--updates-only` updates/s vs SB3.

Curves: every (method, seed) is a `pld learn` run under `--out` (default runs/bench_rl/<task>); re-running
the same command resumes unfinished runs and reuses finished ones; `--aggregate-only` just re-reads them.
Prints one JSON document (mean over seeds and pooled 95 % CI per evaluation step, PLD against every
baseline at `--compare-at`, the first step PLD reaches `--target`) and writes bench_rl.json + bench_rl.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pld_residual.agent import bench as updates_bench
from pld_residual.cli.learn import parse_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pld_residual.learning.benchmark import CurveBenchConfig

    parser.add_argument(
        "--updates-only", action="store_true", help="measure gradient updates/s against SB3 only (< 1 min)"
    )
    updates_bench.add_arguments(parser)  # --seconds, --hidden, ..., --json
    d = CurveBenchConfig()
    curves = parser.add_argument_group("learning curves (without --updates-only)")
    add = curves.add_argument
    add("--out", type=Path, default=None, help="runs directory (default: runs/bench_rl/<task>)")
    add("--task", default=d.task, help="(default: %(default)s)")
    add("--methods", nargs="+", default=list(d.methods), help="(default: %(default)s)")
    add("--seeds", nargs="+", type=int, default=list(d.seeds), help="(default: %(default)s)")
    add("--pld-steps", type=int, default=d.pld_steps, help="env steps of PLD runs (default: %(default)s)")
    add(
        "--baseline-steps", type=int, default=d.baseline_steps, help="of baseline runs (default: %(default)s)"
    )
    add("--eval-every", type=int, default=d.eval_every, help="(default: %(default)s)")
    add("--baseline-eval-every", type=int, default=d.baseline_eval_every, help="(default: %(default)s)")
    add("--eval-episodes", type=int, default=d.eval_episodes, help="(default: %(default)s)")
    add(
        "--compare-at",
        type=int,
        default=d.compare_at,
        help="env steps of the comparison (default: %(default)s)",
    )
    add("--target", type=float, default=d.target, help="PLD's target success (default: %(default)s)")
    add("--jobs", type=int, default=d.jobs, help="runs side by side (default: %(default)s)")
    add("--base", default=None, help="base VLA checkpoint dir (default: runs/base_vla/flow)")
    add("--config-file", default=None, metavar="YAML", help="pld learn --config-file, all methods")
    add("--config", action="append", default=[], metavar="KEY=VALUE", help="pld learn override, all methods")
    add("--aggregate-only", action="store_true", help="start no run; aggregate what is under --out")


def run(args: argparse.Namespace) -> int:
    if args.updates_only:
        return updates_bench.run(args)
    from pld_residual.cli.workspace import workspace_root
    from pld_residual.learning.benchmark import RESULT_JSON, RESULT_PNG, CurveBenchConfig, aggregate, run_all
    from pld_residual.learning.methods import METHODS

    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        print(f"pld bench rl: unknown method(s) {unknown}; known: {sorted(METHODS)}", file=sys.stderr)
        return 2
    try:
        cfg = CurveBenchConfig(
            task=args.task, methods=tuple(args.methods), seeds=tuple(args.seeds), pld_steps=args.pld_steps,
            baseline_steps=args.baseline_steps, eval_every=args.eval_every,
            baseline_eval_every=args.baseline_eval_every, eval_episodes=args.eval_episodes,
            compare_at=args.compare_at, target=args.target, jobs=max(1, args.jobs), base=args.base,
            config_file=args.config_file,
            learn=parse_overrides(args.config),
        )  # fmt: skip
    except ValueError as exc:
        print(f"pld bench rl: {exc}", file=sys.stderr)
        return 2
    out = args.out or (workspace_root() or Path.cwd()) / "runs" / "bench_rl" / cfg.task
    if not args.aggregate_only:
        from pld_residual.cli.interrupts import interrupt_on_sigterm

        interrupt_on_sigterm()  # a SIGTERM to the benchmark stops (and checkpoints) its runs too
        records = run_all(cfg, out, progress=not args.json)
        failed = [r for r in records if r["status"].startswith("failed")]
        for record in failed:
            print(
                f"pld bench rl: {record['method']} seed {record['seed']} {record['status']}", file=sys.stderr
            )
    result = aggregate(cfg, out)
    print(json.dumps(result if args.json else _short(result), indent=2))
    if not args.json:
        print(f"pld bench rl: {out / RESULT_JSON}, {out / RESULT_PNG}", file=sys.stderr)
    return 0 if not result["missing_runs"] else 1


def _short(result: dict) -> dict:
    """The terminal view: per method the mean curve, without per-seed detail."""
    return {
        "comparison": result["comparison"],
        "curves": {
            m: {str(row["env_steps"]): row["mean"] for row in r["points"]}
            for m, r in result["methods"].items()
        },
        "missing_runs": result["missing_runs"],
    }
