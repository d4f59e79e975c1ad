"""`pld pretrain`: train the base VLA (PLD's frozen generalist) on scripted-expert demonstrations.

One command does stage 0 end to end: collect noisy multi-task expert demos (or reuse a cached dataset
made with the same settings), train the small VLA from scratch with each action head (flow matching and
autoregressive tokens), evaluate each on seeded episodes it never saw, and write a summary and a plot.

The target is a *modest generalist* (roughly 20-75 % success on every task): good enough that residual
RL has something to build on, bad enough that PLD has room to improve. `summary.json` says whether a run
landed in that band (`modest_generalist`). The current defaults reach it on pick_cube but not on
peg_insertion (see the package README).

Layout under --out (default <workspace>/runs/base_vla):

    demos/<key>/          the cached dataset (manifest.json, episode_*.npz, collection.json)
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
import math
import os
import queue as queue_module
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pld_vla_server.collect_demos import EVAL_FIRST_SEED, LABELS, DemoConfig
from pld_vla_server.evaluation import DEFAULT_EXECUTE_STEPS

BACKEND = "small_vla"
HEADS = ("flow", "ar")
TRAIN_REPORT = "pretrain.json"
SUMMARY = "summary.json"
PLOT = "pretrain.png"
TARGET_BAND = (0.20, 0.75)  # success rate of a "modest generalist" on every task

# Presets. "default" aims at the modest-generalist band (20-75 % on every task, both heads); "smoke" only
# checks that everything runs (< 2 min). Why these defaults (package README, "Tuning"):
# - the camera encoder only learns to localise objects from enough distinct scenes (a supervised probe:
#   peg position error 3 cm from 120 scenes, 1.4 cm from 400, 6 mm from 1200), so 300 peg demos;
# - pick_cube is easy: with 300 demos the flow head solved it every time, with 100 86 %, with 40 30 %;
# - the AR head predicts only the 4 chunk rows that run before re-planning (`execute_steps`): with 10
#   rows 60 % of its tokens and training time went to rows that never ran.
BUDGETS: dict[str, dict[str, Any]] = {
    "default": {
        "demos_per_task": 300,
        "task_demos": {"pick_cube": 50},
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


def git_commit() -> dict[str, Any] | None:
    """The code version the checkpoint came from (None outside a git checkout)."""
    root = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def source_digest() -> str:
    """Hash of the code that shapes a checkpoint (the small VLA and this pipeline): identifies the code
    even when it is not committed yet, which `git_commit` cannot."""
    package = Path(__file__).resolve().parent
    files = sorted((package / "small_vla").glob("*.py")) + [
        package / name for name in ("pretrain.py", "collect_demos.py", "evaluation.py", "dataset.py")
    ]
    digest = hashlib.sha1()
    for file in files:
        if file.is_file():
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------- progress

Report = Callable[[str, int, int, dict[str, Any]], None]  # (bar name, done, total, postfix)


class ProgressBars:
    """One tqdm bar (with ETA) per job, fed directly or from worker processes through a queue."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, name: str, done: int, total: int, postfix: dict[str, Any]) -> None:
        from tqdm import tqdm

        bar = self.bars.get(name)
        if bar is None:
            unit = "step" if name.startswith("train") else "ep"
            bar = tqdm(
                total=total,
                initial=done,
                desc=name,
                unit=unit,
                position=len(self.bars),
                disable=not self.enabled,
                dynamic_ncols=True,
            )
            self.bars[name] = bar
        bar.set_postfix(postfix, refresh=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()  # now, so that its rate and elapsed time are the job's own

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


# ---------------------------------------------------------------------------------------------- jobs


def _worker_setup(threads: int) -> None:
    """Pin torch to `threads` threads: tiny CPU models run far faster single-threaded when cores are
    shared (2 threads under contention were 5-7x slower here), and results do not depend on core count."""
    import torch

    torch.set_num_threads(threads)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


_IN_WORKER = False  # set in worker processes, which run exactly one job


def _cpu_start() -> float:
    """Where a job's CPU clock starts: at process start in a worker (so interpreter start-up, imports and
    model loading count), else now."""
    return 0.0 if _IN_WORKER else time.process_time()


def train_head(
    cfg: PretrainConfig, head: str, dataset_dir: Path, out: Path, data: dict[str, Any], report: Report | None
) -> dict[str, Any]:
    """Train one head from scratch (or resume / reuse) and save it to `out/<head>/` with pretrain.json."""
    import pld_vla_server.small_vla  # noqa: F401  (registers the backend)
    from pld_vla_server.backends import make_backend

    head_dir, key = out / head, cfg.train_key(head)
    previous = _read_json(head_dir / TRAIN_REPORT)
    if previous and previous.get("complete") and previous.get("train_key") == key:
        return previous
    resume_dir = out / f"{head}.resume"
    key_file = resume_dir / "train_key.txt"
    if resume_dir.exists() and (not key_file.exists() or key_file.read_text() != key):
        shutil.rmtree(resume_dir)  # state of a run with other settings: useless
    resume_dir.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)

    def progress(info: dict[str, Any]) -> None:
        if report is not None:
            report(f"train {head}", info["step"], info["total_steps"], {"loss": f"{info['loss']:.3f}"})

    start, cpu_start = time.perf_counter(), _cpu_start()
    backend = make_backend(BACKEND, cfg.model_config(head))
    result = backend.finetune(
        dataset_dir,
        "full",
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        seed=cfg.seed,
        checkpoint_dir=resume_dir,
        checkpoint_every=250,
        resume=True,
        progress=progress,
        num_threads=cfg.threads,
        **cfg.train_options_for(head),
    )
    tmp = out / f"{head}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    backend.save(tmp)
    losses = result.pop("losses")
    record = {
        "complete": True,
        "head": head,
        "backend": BACKEND,
        "train_key": key,
        "checkpoint": str(head_dir),
        "load_with": "pld_vla_server.small_vla.SmallVLABackend.load(<checkpoint>)",
        "model_id": backend.model_id,
        "model_config": backend.config.to_dict(),
        "training": {
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "learning_rate": cfg.lr,
            "seed": cfg.seed,
            "threads": cfg.threads,
            **cfg.train_options_for(head),
        },
        "report": result,
        "data": data,
        "git": git_commit(),
        "source_digest": source_digest(),
        "wall_time_s": round(time.perf_counter() - start, 1),
        # CPU time of this (single-threaded) job: its wall time on an idle machine, whatever the load now
        "cpu_time_s": round(time.process_time() - cpu_start, 1),
        "created": datetime.now().isoformat(timespec="seconds"),
        "losses": [round(x, 5) for x in losses],
    }
    _write_json(tmp / TRAIN_REPORT, record)
    if head_dir.exists():
        shutil.rmtree(head_dir)
    tmp.rename(head_dir)
    shutil.rmtree(resume_dir, ignore_errors=True)
    return record


EVAL_PART_EPISODES = 25  # evaluation runs in parts of at most this many episodes, side by side


def eval_parts(episodes: int) -> int:
    return max(1, math.ceil(episodes / EVAL_PART_EPISODES))


def _part_range(episodes: int, part: int, parts: int) -> tuple[int, int]:
    """Episode indices [first, end) of evaluation part `part` of `parts` (sizes differ by at most one)."""
    return part * episodes // parts, (part + 1) * episodes // parts


def _eval_path(out: Path, head: str, task: str, part: int = 0, parts: int = 1) -> Path:
    name = f"{task}.json" if parts == 1 else f"{task}.part{part + 1}of{parts}.json"
    return out / head / "eval" / name


def _eval_key(cfg: PretrainConfig, trained: dict[str, Any], task: str) -> dict[str, Any]:
    return {
        "model_id": trained["model_id"],
        "task": task,
        "episodes": cfg.eval_episodes,
        "first_seed": cfg.eval_first_seed,
        "execute_steps": cfg.execute_steps,
    }


def evaluate_head(
    cfg: PretrainConfig,
    head: str,
    task: str,
    out: Path,
    report: Report | None,
    part: int = 0,
    parts: int = 1,
) -> dict[str, Any]:
    """Evaluate the checkpoint `out/<head>/` on `task` (episodes of part `part` of `parts`); the result goes
    to `out/<head>/eval/<task>.json`, or to a part file that `merge_eval_parts` joins into it."""
    from pld_vla_server.backends.base import BACKENDS
    from pld_vla_server.evaluation import evaluate_backend

    head_dir = out / head
    trained = _read_json(head_dir / TRAIN_REPORT)
    if not trained or not trained.get("complete"):
        raise FileNotFoundError(f"no finished checkpoint in {head_dir}")
    key = _eval_key(cfg, trained, task)
    merged = _read_json(_eval_path(out, head, task))
    if merged and merged.get("key") == key:
        return merged
    first, end = _part_range(cfg.eval_episodes, part, parts)
    part_key = {**key, "part": [part, parts]} if parts > 1 else key
    path = _eval_path(out, head, task, part, parts)
    previous = _read_json(path)
    if previous and previous.get("key") == part_key:
        return previous
    cpu_start = _cpu_start()
    backend = BACKENDS.lookup(BACKEND).load(head_dir)
    outcomes: list[bool] = []
    name = f"eval {head} {task}" + (f" {part + 1}/{parts}" if parts > 1 else "")

    def on_episode(outcome: dict[str, Any]) -> None:
        outcomes.append(outcome["success"])
        if report is not None:
            report(name, len(outcomes), end - first, {"success": f"{sum(outcomes)}/{len(outcomes)}"})

    result = evaluate_backend(
        backend,
        task,
        episodes=end - first,
        first_seed=cfg.eval_first_seed + first,
        execute_steps=cfg.execute_steps,
        progress=False,
        on_episode=on_episode,
    )
    result.update(key=part_key, head=head, cpu_time_s=round(time.process_time() - cpu_start, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, result)
    return result


def merge_eval_parts(cfg: PretrainConfig, head: str, task: str, out: Path) -> dict[str, Any] | None:
    """Join the part files of one (head, task) evaluation into `<task>.json` once all of them exist (the
    same result a single job would have written, plus each part's CPU time); None while parts are missing."""
    from pld_sim.expert_eval import wilson_interval

    parts = eval_parts(cfg.eval_episodes)
    if parts == 1:
        return _read_json(_eval_path(out, head, task))
    paths = [_eval_path(out, head, task, part, parts) for part in range(parts)]
    results = [_read_json(path) for path in paths]
    if any(r is None for r in results):
        return None
    per_seed = [outcome for r in results for outcome in r["per_seed"]]
    successes, episodes = sum(r["successes"] for r in results), len(per_seed)
    low, high = wilson_interval(successes, episodes)
    success_lengths = [o["length"] for o in per_seed if o["success"]]
    merged = {
        **results[0],
        "config": {**results[0]["config"], "episodes": episodes, "first_seed": cfg.eval_first_seed},
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes,
        "success_rate_ci95": [round(low, 3), round(high, 3)],
        "mean_length_steps": sum(o["length"] for o in per_seed) / episodes,
        "mean_success_length_steps": sum(success_lengths) / len(success_lengths) if success_lengths else None,
        "inference_ms_mean": round(
            sum(r["inference_ms_mean"] * r["episodes"] for r in results) / episodes, 2
        ),
        "wall_time_s": round(max(r["wall_time_s"] for r in results), 1),  # the parts ran side by side
        "cpu_time_s": round(sum(r["cpu_time_s"] for r in results), 1),
        "parts_cpu_time_s": [r["cpu_time_s"] for r in results],
        "per_seed": per_seed,
        "key": {k: v for k, v in results[0]["key"].items() if k != "part"},
    }
    _write_json(_eval_path(out, head, task), merged)
    for path in paths:
        path.unlink()
    return merged


def _block_report_path(collect_dir: Path, task: str, index: int) -> Path:
    return collect_dir / f"{task}.b{index}.report.json"


def collect_block_job(
    cfg: PretrainConfig, task: str, index: int, collect_dir: Path, report: Report | None
) -> dict:
    """Collect block `index` of `task` into `collect_dir/<task>/b<index>/`; its report goes beside."""
    from pld_vla_server.collect_demos import collect_block

    block = cfg.demos.blocks(task)[index]

    def on_episode(kept: int, discarded: int, success: bool) -> None:
        if report is not None:
            report(f"demos {task} {block.name}", kept, block.wanted, {"discarded": discarded})

    target = collect_dir / task / block.name
    if target.exists():
        shutil.rmtree(target)
    result = collect_block(cfg.demos, block, target, on_episode)
    result["cpu_time_s"] = (
        round(time.process_time() - _cpu_start(), 1) if _IN_WORKER else result["cpu_time_s"]
    )
    _write_json(_block_report_path(collect_dir, task, index), result)
    return result


@dataclass(frozen=True)
class Job:
    kind: str  # "collect" | "train" | "eval"
    head: str = ""
    task: str = ""
    part: int = 0  # collection: the block index; evaluation: which part of `parts` (see `eval_parts`)
    parts: int = 1

    @property
    def name(self) -> str:
        label = " ".join(part for part in (self.kind, self.head, self.task) if part)
        return label + (f" {self.part + 1}/{self.parts}" if self.parts > 1 else "")


@dataclass
class JobContext:
    """What every job needs (sent to worker processes as JSON)."""

    cfg: PretrainConfig
    out: Path
    dataset_dir: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)
    collect_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cfg": self.cfg.to_dict(),
            "out": str(self.out),
            "dataset_dir": str(self.dataset_dir) if self.dataset_dir else None,
            "data": self.data,
            "collect_dir": str(self.collect_dir) if self.collect_dir else None,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> JobContext:
        path = lambda key: Path(values[key]) if values.get(key) else None  # noqa: E731
        return cls(
            PretrainConfig.from_dict(values["cfg"]),
            Path(values["out"]),
            path("dataset_dir"),
            values["data"],
            path("collect_dir"),
        )


def _run_job(job: Job, ctx: JobContext, report: Report | None) -> None:
    if job.kind == "collect":
        assert ctx.collect_dir is not None
        collect_block_job(ctx.cfg, job.task, job.part, ctx.collect_dir, report)
    elif job.kind == "train":
        assert ctx.dataset_dir is not None
        train_head(ctx.cfg, job.head, ctx.dataset_dir, ctx.out, ctx.data, report)
    else:
        evaluate_head(ctx.cfg, job.head, job.task, ctx.out, report, job.part, job.parts)


WORKER_PREFIX = "@pld-progress "  # lines a worker prints to report progress to the parent


def _print_report(name: str, done: int, total: int, postfix: dict[str, Any]) -> None:
    print(WORKER_PREFIX + json.dumps([name, done, total, postfix]), flush=True)


def worker_main(spec: str) -> int:
    """Entry point of a worker process: `python -m pld_vla_server.pretrain --worker '<json>'`.

    Workers are fresh interpreters started with subprocess (not multiprocessing, whose spawn mode
    re-runs the `pld` launcher script), so no simulator, EGL or torch state is inherited.
    """
    global _IN_WORKER
    _IN_WORKER = True
    _exit_with_parent()
    payload = json.loads(spec)
    ctx = JobContext.from_dict(payload["context"])
    job = Job(**payload["job"])
    if job.kind != "collect":
        _worker_setup(ctx.cfg.threads)
    _run_job(job, ctx, _print_report)
    return 0


def _exit_with_parent(period_s: float = 1.0) -> None:
    """Stop this worker when its parent is gone (killed rather than Ctrl-C'd): nobody would read its
    results, and an orphaned trainer would hold a core for many minutes."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(period_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _pump(process: subprocess.Popen, lines: queue_module.Queue) -> None:
    """Forward a worker's progress lines to the parent's queue (other output is passed through)."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(WORKER_PREFIX):
            lines.put(json.loads(line[len(WORKER_PREFIX) :]))
        else:
            print(line, end="", flush=True)


def run_jobs(
    jobs: list[Job],
    ctx: JobContext,
    workers: int,
    bars: ProgressBars,
    after: Callable[[Job, str | None], list[Job]],
) -> list[str]:
    """Run `jobs` (and the follow-up jobs `after(job, error)` returns) on up to `workers` processes.

    Returns the errors (empty when every job finished). Ctrl-C terminates the workers; what was
    finished stays on disk (and half-trained heads resume from their last saved training state).
    """
    todo: deque[Job] = deque(jobs)
    errors: list[str] = []

    def finished(job: Job, error: str | None) -> None:
        if error:
            errors.append(f"{job.name}: {error}")
        todo.extend(after(job, error))

    if workers <= 1:
        while todo:
            job = todo.popleft()
            if job.kind != "collect":
                _worker_setup(ctx.cfg.threads)
            try:
                _run_job(job, ctx, bars)
            except Exception as exc:  # one failed job must not lose the others' results
                finished(job, f"{type(exc).__name__}: {exc}")
            else:
                finished(job, None)
        return errors

    lines: queue_module.Queue = queue_module.Queue()
    running: dict[subprocess.Popen, Job] = {}
    try:
        while todo or running:
            while todo and len(running) < workers:
                job = todo.popleft()
                spec = json.dumps({"context": ctx.to_dict(), "job": asdict(job)})
                process = subprocess.Popen(
                    [sys.executable, "-m", "pld_vla_server.pretrain", "--worker", spec],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                threading.Thread(target=_pump, args=(process, lines), daemon=True).start()
                running[process] = job
            try:
                while True:
                    bars(*lines.get(timeout=0.25))
            except queue_module.Empty:
                pass
            for process in [p for p in running if p.poll() is not None]:
                job = running.pop(process)
                code = process.returncode
                finished(job, None if code == 0 else f"worker exited with code {code}")
    except KeyboardInterrupt:
        for process in running:
            process.terminate()
        for process in running:
            process.wait(timeout=30)
        raise
    return errors


def collect_in_parallel(cfg: PretrainConfig, directory: Path, workers: int, bars: ProgressBars) -> dict:
    """Collect every block of every task in its own worker, then merge them into one dataset at
    `directory` (the same dataset as a sequential collection: each block owns its seeds)."""
    from pld_vla_server.collect_demos import merge_tasks, task_report

    directory.mkdir(parents=True, exist_ok=True)
    ctx = JobContext(cfg, directory, collect_dir=directory)
    blocks = {task: len(cfg.demos.blocks(task)) for task in cfg.demos.tasks}
    jobs = [Job("collect", task=task, part=k, parts=n) for task, n in blocks.items() for k in range(n)]
    start = time.perf_counter()
    errors = run_jobs(jobs, ctx, workers, bars, lambda job, error: [])
    if errors:
        raise RuntimeError("demo collection failed: " + "; ".join(errors))
    per_task = {}
    for task, count in blocks.items():
        paths = [_block_report_path(directory, task, k) for k in range(count)]
        per_task[task] = task_report([_read_json(path) for path in paths])
        for path in paths:
            path.unlink()
    report = merge_tasks(cfg.demos, directory, per_task)
    report["wall_time_s"] = round(time.perf_counter() - start, 1)  # blocks ran side by side
    return report


# ---------------------------------------------------------------------------------------------- summary


def build_summary(
    cfg: PretrainConfig,
    out: Path,
    data: dict[str, Any],
    started: float,
    errors: list[str],
    complete: bool,
    workers: int = 1,
) -> dict[str, Any]:
    """Everything the run produced, read back from the per-head files (the single source of truth)."""
    heads: dict[str, Any] = {}
    for head in cfg.heads:
        trained = _read_json(out / head / TRAIN_REPORT)
        if not trained or trained.get("train_key") != cfg.train_key(head):
            heads[head] = {"trained": False}
            continue
        report = trained["report"]
        entry: dict[str, Any] = {
            "trained": True,
            "checkpoint": str(out / head),
            "model_id": trained["model_id"],
            "steps": report["steps"],
            "loss_first": report["loss_first"],
            "loss_last": report["loss_last"],
            "train_wall_time_s": report["total_wall_time_s"],
            "train_cpu_time_s": trained.get("cpu_time_s"),
            "steps_per_s": report["steps_per_s"],
            "params": report["total_params"],
            "eval": {},
        }
        for task in cfg.demos.tasks:
            result = _read_json(out / head / "eval" / f"{task}.json")
            if result and result.get("key", {}).get("model_id") == trained["model_id"]:
                if result["key"]["episodes"] != cfg.eval_episodes:
                    continue
                entry["eval"][task] = {
                    k: result[k]
                    for k in (
                        "successes",
                        "episodes",
                        "success_rate",
                        "success_rate_ci95",
                        "mean_length_steps",
                        "mean_success_length_steps",
                        "inference_ms_mean",
                        "wall_time_s",
                        "cpu_time_s",
                    )
                }
                if "parts_cpu_time_s" in result:
                    entry["eval"][task]["parts_cpu_time_s"] = result["parts_cpu_time_s"]
                entry["eval"][task]["per_seed"] = [
                    [o["seed"], int(o["success"]), o["length"]] for o in result["per_seed"]
                ]
        heads[head] = entry
    rates = [e["success_rate"] for h in heads.values() for e in h.get("eval", {}).values()]
    evaluated = len(rates) == len(cfg.heads) * len(cfg.demos.tasks) and cfg.eval_episodes > 0
    summary = {
        "job": "pretrain",
        "complete": complete and not errors,
        "errors": errors,
        "config": cfg.to_dict(),
        "data": data,
        "heads": heads,
        "per_seed_format": "[seed, success, length_steps]",
        "target_band": list(TARGET_BAND),
        "modest_generalist": bool(evaluated and all(TARGET_BAND[0] <= r <= TARGET_BAND[1] for r in rates))
        if evaluated
        else None,
        "git": git_commit(),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "workers": workers,
        "updated": datetime.now().isoformat(timespec="seconds"),
    }
    summary["estimated_idle_wall_time_s"] = estimate_idle_wall_time(summary, workers)
    return summary


def _replay(lanes: list[float], jobs: list[tuple[float, float]]) -> list[float]:
    """Finish times of `jobs` (earliest start, duration), each started on the first free lane."""
    finish = []
    for earliest, duration in jobs:
        lane = min(range(len(lanes)), key=lanes.__getitem__)
        lanes[lane] = max(lanes[lane], earliest) + duration
        finish.append(lanes[lane])
    return finish


def estimate_idle_wall_time(summary: dict[str, Any], workers: int) -> float | None:
    """Wall time the whole command would take from scratch on an idle machine with `workers` cores: the
    jobs' CPU times (every job is single-threaded) replayed through the schedule of `run` (collection per
    task, then both heads, each head's evaluations as soon as it is trained)."""
    per_task = summary["data"].get("per_task", {})
    collection = [c for t in per_task.values() for c in t.get("blocks_cpu_time_s") or [t.get("cpu_time_s")]]
    if not collection or None in collection:
        return None
    collected = max(_replay([0.0] * workers, [(0.0, c) for c in collection]))
    heads = summary["config"]["heads"]
    entries = [summary["heads"][head] for head in heads]
    if any(not e.get("trained") or e.get("train_cpu_time_s") is None for e in entries):
        return None
    lanes = [0.0] * workers
    trained = _replay(lanes, [(0.0, e["train_cpu_time_s"]) for e in entries])
    evals = [
        (done, cpu)
        for done, entry in sorted(zip(trained, entries, strict=True), key=lambda pair: pair[0])
        for result in entry["eval"].values()
        for cpu in result.get("parts_cpu_time_s") or [result.get("cpu_time_s") or 0.0]
    ]
    _replay(lanes, evals)
    return round(collected + max(lanes), 1)


def plot_summary(summary: dict[str, Any], out: Path, path: Path) -> None:
    """Loss curve per head (their losses differ in kind: flow MSE, token cross-entropy) and success bars
    with 95 % Wilson intervals per task and head, the target band shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    heads = list(summary["heads"])
    tasks = summary["config"]["demos"]["tasks"]
    fig, axes = plt.subplots(1, len(heads) + 1, figsize=(4.2 * (len(heads) + 1), 3.4))
    for ax, head in zip(axes[:-1], heads, strict=True):
        trained = _read_json(out / head / TRAIN_REPORT) if summary["heads"][head].get("trained") else None
        if trained:
            losses = np.asarray(trained["losses"])
            window = max(1, len(losses) // 50)
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(len(losses)), losses, alpha=0.25, lw=0.6, color="C0")
            ax.plot(np.arange(len(smooth)) + window - 1, smooth, color="C0")
            if losses.min() > 0 and losses.max() / losses.min() > 5:
                ax.set_yscale("log")
        kind = "flow-matching MSE" if head == "flow" else "token cross-entropy"
        ax.set_title(f"{head} head: training loss ({kind})", fontsize=9)
        ax.set_xlabel("step")
    ax = axes[-1]
    width = 0.8 / max(1, len(heads))
    x = np.arange(len(tasks))
    for i, head in enumerate(heads):
        evals = summary["heads"][head].get("eval", {})
        rates = np.array([evals[t]["success_rate"] if t in evals else np.nan for t in tasks])
        low = np.array([evals[t]["success_rate_ci95"][0] if t in evals else np.nan for t in tasks])
        high = np.array([evals[t]["success_rate_ci95"][1] if t in evals else np.nan for t in tasks])
        ax.bar(x + (i - (len(heads) - 1) / 2) * width, rates, width, label=head, color=f"C{i + 1}")
        ax.errorbar(
            x + (i - (len(heads) - 1) / 2) * width,
            rates,
            yerr=[rates - low, high - rates],
            fmt="none",
            color="k",
        )
    band = summary["target_band"]
    ax.axhspan(band[0], band[1], color="green", alpha=0.1, label="target band")
    ax.set_xticks(x, tasks, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate (95 % CI)")
    episodes = summary["config"]["eval_episodes"]
    ax.set_title(f"base policy, {episodes} seeded episodes per task", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_summary(summary: dict[str, Any], out: Path) -> None:
    _write_json(out / SUMMARY, summary)
    plot_summary(summary, out, out / PLOT)


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
        help="successful expert demos per task; TASK=N sets one task's count (default: 300 pick_cube=50)",
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
    _print_summary(summary, out)
    return 0 if summary["complete"] else 1


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    for head, entry in summary["heads"].items():
        if not entry.get("trained"):
            print(f"{head}: not trained")
            continue
        parts = []
        for task, result in entry["eval"].items():
            low, high = result["success_rate_ci95"]
            parts.append(
                f"{task} {result['successes']}/{result['episodes']} = {result['success_rate']:.0%} "
                f"(95% CI {low:.0%}-{high:.0%})"
            )
        print(f"{head}: {entry['checkpoint']}  " + ("; ".join(parts) or "not evaluated"))
    for error in summary["errors"]:
        print(f"error: {error}")
    idle = summary.get("estimated_idle_wall_time_s")
    if idle is not None:
        print(f"CPU time replayed on {summary['workers']} idle cores: ~{idle:.0f} s")
    print(f"wall time {summary['wall_time_s']:.0f} s; results: {out / SUMMARY}, {out / PLOT}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker_main(sys.argv[2]))
    sys.exit("usage: pld pretrain ... (this module runs as a worker only with --worker)")
