"""`pld pretrain`: train the base VLA (PLD's frozen generalist) on scripted-expert demonstrations.

One command does stage 0 end to end: collect noisy multi-task expert demos (or reuse a cached dataset
made with the same settings), train the small VLA from scratch with each action head (flow matching and
autoregressive tokens), evaluate each on seeded episodes it never saw, and write a summary and a plot.

The target is a *modest generalist* (roughly 20-75 % success on every task): good enough that residual
RL has something to build on, bad enough that PLD has room to improve. `summary.json` says whether a run
landed in that band (`modest_generalist`); the defaults do, for both heads (see the package README).

Layout under --out (default <workspace>/runs/base_vla):

    demos/<key>/          the cached dataset (manifest.json, <task>/<block>/episode_*.npz, collection.json)
    <head>/               a checkpoint loadable with SmallVLABackend.load(<head>/), plus
    <head>/pretrain.json  its training config, data manifest (dataset, episodes, steps, seeds, git
                          commit, wall time) and training report (loss curve)
    <head>/eval/<task>.json  its evaluation (success rate, Wilson CI, per-seed outcomes)
    <head>.resume/        training state while a head is in progress (deleted once it is done)
    summary.json, pretrain.png   everything above in one file; loss curves and success bars with CIs

Re-running the same command skips whatever is already finished (dataset, heads, evaluations) and
resumes an interrupted training run; Ctrl-C leaves finished parts usable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pld_vla_server.collect_demos import EVAL_FIRST_SEED, LABELS, DemoConfig
from pld_vla_server.evaluation import DEFAULT_EXECUTE_STEPS
from pld_vla_server.pretrain_jobs import BACKEND, HEADS, TRAIN_REPORT, eval_parts, merge_eval_parts
from pld_vla_server.pretrain_runner import Job, JobContext, ProgressBars, collect_in_parallel, run_jobs
from pld_vla_server.pretrain_summary import (
    PLOT,
    SUMMARY,
    TARGET_BAND,
    build_summary,
    estimate_idle_wall_time,
    print_summary,
    write_summary,
)

# Presets. "default" aims at the modest-generalist band (20-75 % on every task, both heads); "smoke" only
# checks that everything runs (< 2 min). Why these defaults (package README, "Tuning"):
# - the camera encoder only learns to localise objects from enough distinct scenes (a supervised probe:
#   peg position error 3 cm from 120 scenes, 1.4 cm from 400, 6 mm from 1200), so 300 peg demos;
# - pick_cube is easy: the flow head solved it in 50/50 episodes from 300 demos and in 36-43/50 from 30-100
#   (one outlier: 15/50), so its count is small; 40 put both heads inside the band;
# - the AR head predicts only the 4 chunk rows that run before re-planning (`execute_steps`): with 10
#   rows 60 % of its tokens and training time went to rows that never ran.
BUDGETS: dict[str, dict[str, Any]] = {
    "default": {
        "demos_per_task": 300,
        "task_demos": {"pick_cube": 40},
        "noise": 0.05,
        "hesitation": 0.0,
        "steps": 4000,
        "batch_size": 64,
        "eval_episodes": 50,
        "execute_steps": DEFAULT_EXECUTE_STEPS,
        "lr": 1e-3,
        "model": {},
        "head_model": {"ar": {"horizon": DEFAULT_EXECUTE_STEPS}},
        "train_options": {},
        "head_train_options": {},
    },
    "smoke": {
        "demos_per_task": 2,
        "noise": 0.1,
        "hesitation": 0.0,
        "steps": 20,
        "batch_size": 16,
        "eval_episodes": 2,
        "execute_steps": DEFAULT_EXECUTE_STEPS,
        "lr": 3e-4,
        "model": {},
        "head_model": {},
        "train_options": {},
        "head_train_options": {},
    },
}


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that determines the result of `pld pretrain` (hashed to decide what can be reused)."""

    demos: DemoConfig = field(default_factory=DemoConfig)
    heads: tuple[str, ...] = HEADS
    steps: int = 4000
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    model: dict[str, Any] = field(default_factory=dict)  # SmallVLAConfig overrides (not `head`)
    # per-head SmallVLAConfig overrides on top of `model`, e.g. {"ar": {"horizon": 4}}
    head_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    # further `finetune` options (e.g. shift_pad, weight_decay, warmup_steps); the ones above are fixed
    train_options: dict[str, Any] = field(default_factory=dict)
    # per-head options on top of `train_options`, e.g. {"ar": {"state_loss_weight": 1.0}}
    head_train_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_episodes: int = 50
    eval_first_seed: int = EVAL_FIRST_SEED
    execute_steps: int | None = DEFAULT_EXECUTE_STEPS
    threads: int = 1  # torch threads per worker process

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple(self.heads))
        unknown = sorted(set(self.heads) - set(HEADS))
        if unknown or not self.heads:
            raise ValueError(f"heads must be a non-empty subset of {HEADS}, got {list(self.heads)}")
        if self.threads < 1:
            raise ValueError("threads must be >= 1")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps and batch_size must be >= 1 and lr > 0")
        if self.eval_episodes < 0:
            raise ValueError("eval_episodes must be >= 0 (0 skips evaluation)")
        reserved = {"steps", "batch_size", "learning_rate", "seed", "checkpoint_dir", "resume", "progress"}
        if set(self.head_train_options) - set(HEADS):
            raise ValueError(
                f"head_train_options: heads must be in {HEADS}, got {list(self.head_train_options)}"
            )
        for options in (self.train_options, *self.head_train_options.values()):
            if reserved & set(options):
                raise ValueError(f"train_options must not set {sorted(reserved & set(options))}")
        if any("head" in options for options in (self.model, *self.head_model.values())):
            raise ValueError("model overrides must not set `head` (choose heads with `heads`)")
        if self.eval_first_seed < EVAL_FIRST_SEED:
            raise ValueError(f"evaluation seeds must start at >= {EVAL_FIRST_SEED} (demo seeds are below)")

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["demos"] = self.demos.to_dict()
        values["heads"] = list(self.heads)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PretrainConfig:
        values = dict(values)
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown pretrain options: {sorted(unknown)}")
        if isinstance(values.get("demos"), dict):
            values["demos"] = DemoConfig.from_dict(values["demos"])
        return cls(**values)

    def model_config(self, head: str) -> dict[str, Any]:
        return {**self.model, **self.head_model.get(head, {}), "head": head, "seed": self.seed}

    def train_options_for(self, head: str) -> dict[str, Any]:
        return {**self.train_options, **self.head_train_options.get(head, {})}

    def train_key(self, head: str) -> str:
        """Identity of one head's training run: same key -> same checkpoint (so it can be reused)."""
        payload = {
            "demos": self.demos.to_dict(),
            "model": self.model_config(head),
            "train_options": self.train_options_for(head),
            "steps": self.steps,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seed": self.seed,
        }
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def default_out() -> Path:
    from pld_residual.cli.workspace import workspace_root

    return (workspace_root() or Path.cwd()) / "runs" / "base_vla"


# ---------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--out", type=Path, default=None, help="output directory (default: <workspace>/runs/base_vla)")
    add("--budget", choices=sorted(BUDGETS), default="default", help="preset (smoke: < 2 min, CI only)")
    add("--tasks", nargs="+", default=None, help="tasks (default: pick_cube peg_insertion)")
    add(
        "--demos-per-task",
        nargs="+",
        default=None,
        metavar="N|TASK=N",
        help="successful expert demos per task; TASK=N sets one task's count (default: 300 pick_cube=40)",
    )
    add("--noise", type=float, default=None, help="expert action noise (fraction of the action limits)")
    add("--hesitation", type=float, default=None, help="expert hesitation probability")
    add(
        "--labels",
        choices=LABELS,
        default="executed",
        help="demo action labels: the noisy action that ran, or the expert's intended one (DART)",
    )
    add("--demo-seed", type=int, default=0, help="first demo seed (default: %(default)s)")
    add("--steps", type=int, default=None, help="training steps per head")
    add("--batch-size", type=int, default=None, help="training batch size")
    add("--lr", type=float, default=None, help="peak learning rate")
    add("--seed", type=int, default=0, help="weight-init and training seed (default: %(default)s)")
    add("--heads", nargs="+", choices=HEADS, default=None, help="action heads to train (default: both)")
    add(
        "--model",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="SmallVLAConfig override (JSON value); ar:KEY=VALUE sets it for one head",
    )
    add(
        "--train-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="other finetune option, e.g. shift_pad=0 (JSON value); ar:KEY=VALUE sets it for one head",
    )
    add("--eval-episodes", type=int, default=None, help="seeded evaluation episodes per task and head")
    add("--no-eval", action="store_true", help="train only")
    add(
        "--execute-steps",
        type=int,
        default=None,
        help="K: chunk rows run before re-planning (0: whole chunk)",
    )
    add("--workers", type=int, default=2, help="parallel worker processes (default: %(default)s)")
    add("--threads", type=int, default=1, help="torch threads per worker (default: %(default)s)")
    add("--demo-cache", type=Path, default=None, help="dataset cache directory (default: <out>/demos)")
    add("--quiet", action="store_true", help="no progress bars")


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"pld pretrain: --model expects KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    return overrides


def _demo_counts(items: list[str] | None, budget: dict[str, Any], tasks: tuple[str, ...]) -> tuple[int, dict]:
    """`--demos-per-task 300 pick_cube=100` -> (300, {"pick_cube": 100}); the budget fills what is not given.

    A bare N given alone applies to every task (the budget's per-task counts are dropped with it)."""
    default = int(budget["demos_per_task"])
    per_task = {t: n for t, n in budget.get("task_demos", {}).items() if t in tasks}
    if items:
        bare = [item for item in items if "=" not in item]
        if len(bare) > 1:
            raise SystemExit(f"pld pretrain: --demos-per-task takes one N and TASK=N entries, got {items}")
        if bare:
            default, per_task = _positive_int(bare[0]), {}
        for item in items:
            task, sep, count = item.partition("=")
            if sep:
                if task not in tasks:
                    raise SystemExit(
                        f"pld pretrain: --demos-per-task {item}: {task!r} is not in {list(tasks)}"
                    )
                per_task[task] = _positive_int(count)
    return default, per_task


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"pld pretrain: demo counts must be positive integers, got {text!r}")
    return value


def _split_head_options(options: dict[str, Any], defaults: dict[str, dict]) -> tuple[dict, dict]:
    """`{"lr_x": 1, "ar:state_loss_weight": 2}` -> ({"lr_x": 1}, {"ar": {"state_loss_weight": 2}}), on top
    of the budget's per-head defaults."""
    shared: dict[str, Any] = {}
    per_head = {head: dict(values) for head, values in defaults.items()}
    for key, value in options.items():
        head, sep, name = key.partition(":")
        if not sep:
            shared[key] = value
        elif head in HEADS and name:
            per_head.setdefault(head, {})[name] = value
        else:
            raise SystemExit(f"pld pretrain: {key}: expected KEY or HEAD:KEY with HEAD in {HEADS}")
    return shared, per_head


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """The budget preset, with every option the user gave on top."""
    budget = BUDGETS[args.budget]

    def pick(name: str, key: str | None = None) -> Any:
        value = getattr(args, name)
        return budget[key or name] if value is None else value

    tasks = tuple(args.tasks) if args.tasks else DemoConfig().tasks
    demos_per_task, task_demos = _demo_counts(args.demos_per_task, budget, tasks)
    demos = DemoConfig(
        tasks=tasks,
        demos_per_task=demos_per_task,
        task_demos=task_demos,
        noise=pick("noise"),
        hesitation=pick("hesitation"),
        labels=args.labels,
        first_seed=args.demo_seed,
    )
    execute = budget["execute_steps"] if args.execute_steps is None else args.execute_steps
    shared, head_options = _split_head_options(
        _parse_overrides(args.train_option), budget["head_train_options"]
    )
    shared_model, head_model = _split_head_options(_parse_overrides(args.model), budget["head_model"])
    return PretrainConfig(
        demos=demos,
        heads=tuple(args.heads) if args.heads else HEADS,
        steps=pick("steps"),
        batch_size=pick("batch_size"),
        lr=budget["lr"] if args.lr is None else args.lr,
        seed=args.seed,
        model={**budget["model"], **shared_model},
        head_model=head_model,
        train_options={**budget["train_options"], **shared},
        head_train_options=head_options,
        eval_episodes=0 if args.no_eval else pick("eval_episodes"),
        execute_steps=execute or None,
        threads=args.threads,
    )


def run(args: argparse.Namespace) -> int:
    from pld_vla_server.collect_demos import cached_or_collect

    started = time.perf_counter()
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        raise SystemExit(f"pld pretrain: {exc}") from exc
    out = (args.out or default_out()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.quiet
    workers = max(1, args.workers)
    bars = ProgressBars(enabled=progress)
    print(f"pld pretrain: {args.budget} budget -> {out}")

    def collector(demos: DemoConfig, directory: Path) -> dict[str, Any]:
        return collect_in_parallel(cfg, directory, workers, bars)

    dataset_dir, collection, reused = cached_or_collect(
        cfg.demos, (args.demo_cache or out / "demos").resolve(), progress=progress, collector=collector
    )
    per_task = collection["per_task"]
    print(
        f"demos: {'reused' if reused else 'collected'} {collection['episodes']} episodes "
        f"({collection['steps']} steps) in {dataset_dir}; "
        + ", ".join(f"{t}: {p['kept']} kept, {p['discarded']} failed discarded" for t, p in per_task.items())
    )
    data = {
        "dataset": str(dataset_dir),
        "cache_key": cfg.demos.cache_key(),
        "demo_config": cfg.demos.to_dict(),
        "episodes": collection["episodes"],
        "steps": collection["steps"],
        "discarded": collection["discarded"],
        "per_task": per_task,
        "collection_wall_time_s": collection["wall_time_s"],
        "collection_cpu_time_s": collection.get("cpu_time_s"),
        "reused": reused,
    }
    errors: list[str] = []
    complete = False

    def after(job: Job, error: str | None) -> list[Job]:
        if error:
            errors.append(f"{job.name}: {error}")
        write_summary(build_summary(cfg, out, data, started, errors, False, workers), out)
        if job.kind == "eval" and not error:
            merge_eval_parts(cfg, job.head, job.task, out)
        if error or job.kind != "train" or cfg.eval_episodes == 0:
            return []
        parts = eval_parts(cfg.eval_episodes)  # as soon as a head is trained, in parts side by side
        return [Job("eval", job.head, task, part, parts) for task in cfg.demos.tasks for part in range(parts)]

    ctx = JobContext(cfg, out, dataset_dir, data)
    try:
        run_jobs([Job("train", head) for head in cfg.heads], ctx, workers, bars, after)
        complete = True
    finally:
        bars.close()
        summary = build_summary(cfg, out, data, started, errors, complete, workers)
        write_summary(summary, out)
        if args.out is None:  # also a timestamped record, as every long job keeps under runs/
            record = out.parent / f"{datetime.now():%Y%m%d-%H%M%S}-pretrain"
            record.mkdir(parents=True, exist_ok=True)
            shutil.copy2(out / SUMMARY, record / SUMMARY)
            shutil.copy2(out / PLOT, record / PLOT)
    print_summary(summary, out)
    return 0 if summary["complete"] else 1


__all__ = [
    "BACKEND",
    "BUDGETS",
    "HEADS",
    "PLOT",
    "SUMMARY",
    "TARGET_BAND",
    "TRAIN_REPORT",
    "PretrainConfig",
    "add_arguments",
    "config_from_args",
    "estimate_idle_wall_time",
    "run",
]
