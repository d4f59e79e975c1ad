"""`pld sim <verb>`: look at and check the simulated tasks.

pld sim tasks                       list the registered tasks with robot, instruction and time limit
pld sim experts --task T            success rate of the scripted expert over seeded episodes
pld sim snapshot --task T           save the first frame of every camera as a PNG
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    sub.add_parser("tasks", help="list the registered tasks").set_defaults(sim_run=_tasks)
    experts = sub.add_parser("experts", help="scripted-expert success rate over seeded episodes")
    experts.add_argument("--task", action="append", help="task name (repeatable; default: every task)")
    experts.add_argument("--episodes", type=int, default=50, help="episodes per task (default: %(default)s)")
    experts.add_argument(
        "--noise", type=float, default=0.0, help="expert action noise (default: %(default)s)"
    )
    experts.add_argument(
        "--hesitation", type=float, default=0.0, help="expert hesitation (default: %(default)s)"
    )
    experts.add_argument("--json", action="store_true", help="print only JSON")
    experts.set_defaults(sim_run=_experts)
    snapshot = sub.add_parser("snapshot", help="save every camera view of a task's first frame as a PNG")
    snapshot.add_argument("--task", default="pick_cube")
    snapshot.add_argument("--seed", type=int, default=0)
    snapshot.add_argument("--image-size", type=int, default=256)
    snapshot.add_argument("--out", type=Path, default=None, help="PNG path (default: <task>_seed<seed>.png)")
    snapshot.set_defaults(sim_run=_snapshot)


def run(args: argparse.Namespace) -> int:
    return args.sim_run(args)


def _tasks(args: argparse.Namespace) -> int:
    import pld_sim

    for name in sorted(pld_sim.TASKS):
        task = pld_sim.TASKS[name]()
        print(
            f'{name:24s} robot={task.robot:5s} time_limit={task.time_limit_s:5.1f}s  "{task.instruction()}"'
        )
    return 0


def _experts(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import pld_sim
    from pld_sim.expert_eval import ExpertEvalConfig, evaluate_expert

    tasks = args.task or sorted(pld_sim.TASKS)
    results = []
    for task in tasks:
        cfg = ExpertEvalConfig(
            task=task, episodes=args.episodes, noise=args.noise, hesitation=args.hesitation
        )
        with tqdm(total=cfg.episodes, desc=task, unit="ep", disable=args.json) as bar:
            result = evaluate_expert(cfg, on_episode=lambda _, ok: (bar.update(1), bar.set_postfix(ok=ok)))
        results.append(result)
        if not args.json:
            low, high = result["success_rate_ci95"]
            print(
                f"{task}: {result['successes']}/{cfg.episodes} = {result['success_rate']:.0%} "
                f"(95% CI {low:.0%}-{high:.0%}), failed seeds {result['failed_seeds']}"
            )
    print(json.dumps(results, indent=2))
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import pld_sim

    env = pld_sim.make(args.task, image_size=args.image_size)
    obs, _ = env.reset(seed=args.seed)
    out = args.out or Path(f"{args.task}_seed{args.seed}.png")
    plt.imsave(out, np.concatenate(list(obs["images"].values()), axis=1))
    print(f'{out}: {" | ".join(obs["images"])} camera, "{obs["instruction"]}"')
    return 0
