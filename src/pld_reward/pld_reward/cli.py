"""`pld reward <collect|train|mine|frames>`: the success classifier's data, training and mining.

Typical run for one task (paths default to runs/reward/<name>/):
  pld reward collect --task pick_cube                       # labelled frames for training
  pld reward collect --task pick_cube --split test          # fresh seeds, held out for `pld bench reward`
  pld reward train --task pick_cube                         # fit, calibrate for 99 % precision, save
  pld reward mine --task pick_cube --rounds 3               # false-positive mining rounds
`--task gpu_insertion` means its four stages, judged by one classifier with a stage input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# shorthand for a multi-stage task: the tasks of its stages, in stage order
STAGED_TASKS = {"gpu_insertion": tuple(f"gpu_insertion_stage{i}" for i in range(1, 5))}
# seeds per split: training frames, then the held-out test split, never overlapping
SPLIT_SEEDS = {"train": 0, "test": 500_000}


def tasks_of(name: str) -> tuple[str, ...]:
    return STAGED_TASKS.get(name, (name,))


def default_root(name: str) -> Path:
    from pld_residual.cli.workspace import workspace_root

    return (workspace_root() or Path.cwd()) / "runs" / "reward" / name


def default_episodes(task: str) -> dict[str, int]:
    """Sources per task: the base VLA was trained on pick_cube and peg_insertion only."""
    if task in ("pick_cube", "peg_insertion"):
        return {"expert": 20, "noisy_expert": 30, "base": 30}
    return {"expert": 20, "noisy_expert": 30}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="reward_command", metavar="<step>", required=True)
    collect = sub.add_parser("collect", help="roll out drivers in sim and store predicate-labelled frames")
    _common(collect)
    collect.add_argument(
        "--split",
        choices=sorted(SPLIT_SEEDS),
        default="train",
        help="train (seeds from 0) or test (fresh seeds from 500000, for the benchmark)",
    )
    collect.add_argument(
        "--episodes",
        default=None,
        help="episodes per source, e.g. expert=20,noisy_expert=30,base=30 (per stage)",
    )
    collect.add_argument("--base", default=None, help="base VLA checkpoint (default runs/base_vla/flow)")
    train = sub.add_parser("train", help="train and calibrate the classifier on collected frames")
    _common(train)
    train.add_argument(
        "--frames",
        nargs="+",
        default=None,
        help="frame-set directories (default <root>/frames/train and what mining added under "
        "<root>/mining: every round's rollouts and the false positives)",
    )
    train.add_argument(
        "--holdout", type=float, default=0.25, help="fraction of episodes held out to calibrate"
    )
    mine = sub.add_parser("mine", help="false-positive mining rounds on fresh rollouts")
    _common(mine)
    mine.add_argument("--rounds", type=int, default=3, help="retrains at most (default 3)")
    mine.add_argument("--episodes", default=None, help="episodes per source and stage per round")
    mine.add_argument("--finetune-steps", type=int, default=500)
    mine.add_argument("--base", default=None, help="base VLA checkpoint (default runs/base_vla/flow)")
    frames = sub.add_parser("frames", help="summarise frame-set directories (counts per task and source)")
    frames.add_argument("dirs", nargs="+")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task", default="pick_cube", help="task, or gpu_insertion for its four stages (default pick_cube)"
    )
    parser.add_argument("--root", type=Path, default=None, help="output root (default runs/reward/<task>)")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="ClassifierConfig override (repeatable), e.g. train_steps=2000",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def task_camera_names(tasks: tuple[str, ...]) -> list[str]:
    """Every camera the tasks' scenes have (side, wrist and each task's own, e.g. peg_insertion's fixture
    camera), in order: the classifier sees them all unless `--config cameras=...` says otherwise."""
    from pld_sim.scene import task_cameras
    from pld_sim.tasks import make_task

    names: list[str] = []
    for task in tasks:
        names += [name for name in task_cameras(make_task(task)) if name not in names]
    return names


def classifier_config(args: argparse.Namespace) -> Any:
    from pld_residual.cli.learn import parse_overrides
    from pld_reward.config import ClassifierConfig

    tasks = tasks_of(args.task)
    return ClassifierConfig.from_dict(
        {"tasks": list(tasks), "cameras": task_camera_names(tasks), **parse_overrides(args.config)}
    )


def parse_episodes(text: str | None) -> dict[str, int] | None:
    if text is None:
        return None
    out: dict[str, int] = {}
    for item in text.split(","):
        name, sep, count = item.partition("=")
        if not sep or not count.strip().isdigit():
            raise ValueError(f"--episodes expects SOURCE=COUNT[,SOURCE=COUNT...], got {item!r}")
        out[name.strip()] = int(count)
    return out


def run(args: argparse.Namespace) -> int:
    try:
        return {"collect": _collect, "train": _train, "mine": _mine, "frames": _frames}[args.reward_command](
            args
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"pld reward {args.reward_command}: {exc}", file=sys.stderr)
        return 2


def _root(args: argparse.Namespace) -> Path:
    return args.root if args.root is not None else default_root(args.task)


def _collect(args: argparse.Namespace) -> int:
    from pld_reward.collect import CollectConfig, collect

    cfg = classifier_config(args)
    out = _root(args) / "frames" / args.split
    episodes = parse_episodes(args.episodes)
    reports = {}
    for task in cfg.tasks:
        collect_cfg = CollectConfig(
            task=task,
            episodes=episodes or default_episodes(task),
            first_seed=SPLIT_SEEDS[args.split],
            base_checkpoint=args.base,
        )
        reports[task] = collect(collect_cfg, cfg, out, progress=not args.quiet)
    print(json.dumps({"frames_dir": str(out), "tasks": reports}, indent=1))
    return 0


def _train(args: argparse.Namespace) -> int:
    from pld_reward.frames import load_frames
    from pld_reward.mining import mining_frame_dirs
    from pld_reward.train import train_classifier

    cfg = classifier_config(args)
    root = _root(args)
    frames, problems = load_frames(
        args.frames or [root / "frames" / "train", *mining_frame_dirs(root / "mining")]
    )
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    out = root / "classifier"
    report = train_classifier(cfg, frames, out, args.holdout, progress=not args.quiet)
    print_table(report["calibration"]["held_out"], f"held-out episodes (calibration), saved to {out}")
    return 0


def _mine(args: argparse.Namespace) -> int:
    from pld_reward.mining import MiningConfig, mine

    root = _root(args)
    mining = MiningConfig(
        rounds=args.rounds, episodes=parse_episodes(args.episodes), finetune_steps=args.finetune_steps
    )
    report = mine(
        root / "classifier",
        [root / "frames" / "train"],
        root / "mining",
        mining,
        args.base,
        progress=not args.quiet,
    )
    for row in report["rounds"]:
        print_table(
            row["stages"], f"round {row['round']}: fresh rollouts, {row['false_positives']} false positives"
        )
    print(
        f"target precision {'holds' if report['target_holds'] else 'NOT reached'} after "
        f"{report['mining_rounds']} mining round(s); report: {root / 'mining' / 'mining_report.json'}"
    )
    return 0 if report["target_holds"] else 1


def _frames(args: argparse.Namespace) -> int:
    from pld_reward.frames import load_frames

    frames, problems = load_frames(args.dirs)
    print(json.dumps({**frames.summary(), "unreadable": problems}, indent=1))
    return 0


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    print(title)
    head = ("stage", "task", "frames", "pos", "precision", "recall", "fp", "threshold")
    print("  {:>5} {:<22} {:>6} {:>5} {:>9} {:>7} {:>4} {:>9}".format(*head))
    for r in rows:
        print(
            f"  {r['stage']:>5} {r.get('task', ''):<22} {r['frames']:>6} {r['positives']:>5} "
            f"{r['precision']:>9.4f} {r['recall']:>7.4f} {r['fp']:>4} {r['threshold']:>9.4f}"
        )
