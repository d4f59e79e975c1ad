"""`pld eval`: success rate (95 % CI) of VLA checkpoints on seeded sim episodes, per model and task.

  pld eval --vla runs/base_vla/flow runs/distilled/model [--label base pld]
           [--tasks pick_cube pick_cube_cluttered] [--episodes 50] [--trajectories DATASET ...] [--out DIR]

Writes <out>/eval.json, success.png (bars with 95 % intervals) and trajectories.png (end-effector paths of
the evaluated models on the first task, and of the datasets' episodes by source). Episodes are logged as
they finish, so re-running the same command after Ctrl-C continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from pld_residual.cli.interrupts import interrupt_on_sigterm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--vla", type=Path, nargs="+", required=True, help="VLA checkpoint directories (flow or ar head)")
    add("--label", nargs="+", default=None, help="a name per --vla (default: the directory names)")
    add("--tasks", nargs="+", default=["pick_cube"], help="tasks (default: pick_cube)")
    add("--episodes", type=int, default=50, help="seeded episodes per model and task (default: %(default)s)")
    add("--execute-steps", type=int, default=None, help="chunk rows run before re-planning (default: 4)")
    add("--trajectories", type=Path, nargs="*", default=[], help="PLD datasets whose paths to plot too")
    add("--out", type=Path, default=None, help="output directory (default: runs/<time>-eval)")
    add("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pld_residual.cli.workspace import workspace_root
    from pld_residual.vla_eval import (
        dataset_paths,
        evaluate_model,
        model_paths,
        plot_success,
        plot_trajectories,
    )
    from pld_vla_server.evaluation import DEFAULT_EXECUTE_STEPS
    from pld_vla_server.small_vla import SmallVLABackend

    labels = args.label or [path.name if path.name != "model" else path.parent.name for path in args.vla]
    if len(labels) != len(args.vla) or len(set(labels)) != len(labels):
        raise SystemExit("pld eval: give one distinct --label per --vla")
    if args.episodes < 1:
        raise SystemExit("pld eval: --episodes must be at least 1")
    import pld_sim

    unknown = [task for task in args.tasks if task not in pld_sim.TASKS]
    if unknown:
        raise SystemExit(f"pld eval: unknown task(s) {unknown}; known: {sorted(pld_sim.TASKS)}")
    missing = [str(path) for path in args.vla if not (path / "config.json").is_file()]
    if missing:
        raise SystemExit(f"pld eval: no VLA checkpoint (config.json) in {missing}")
    interrupt_on_sigterm()  # also when started with SIGINT ignored (nohup, a test runner)
    root = workspace_root() or Path.cwd()
    out = (args.out or root / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-eval").resolve()
    out.mkdir(parents=True, exist_ok=True)
    execute = args.execute_steps or DEFAULT_EXECUTE_STEPS
    results = []
    for path, label in zip(args.vla, labels, strict=True):
        backend = SmallVLABackend.load(path)
        for task in args.tasks:
            results.append(evaluate_model(backend, label, task, args.episodes, out, execute, not args.quiet))
            r = results[-1]
            low, high = r["ci95"]
            rate = f"{r['successes']}/{r['episodes']} = {r['success_rate']:.0%}"
            print(f"{label} {task}: {rate} (95% CI {low:.0%}-{high:.0%})")
    groups = {label: model_paths(out, label, args.tasks[0])[:50] for label in labels}
    for dataset in args.trajectories:
        for source, paths in dataset_paths(dataset, args.tasks[0]).items():
            groups[f"{dataset.name}: {source}"] = paths
    plot_success(results, out / "success.png")
    plot_trajectories(groups, out / "trajectories.png", title=f"{args.tasks[0]}: end-effector paths")
    body = {
        "results": results,
        "vla": {name: str(p.resolve()) for name, p in zip(labels, args.vla, strict=True)},
    }
    (out / "eval.json").write_text(json.dumps(body, indent=2) + "\n")
    print(f"results: {out}/eval.json, success.png, trajectories.png")
    return 0
