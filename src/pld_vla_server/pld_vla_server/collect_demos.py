"""Scripted-expert demonstrations for pretraining the base VLA (PLD stage 0).

The base policy of PLD is meant to be a *modest generalist*: it should solve the tasks sometimes, not
always, so that the residual RL specialist has something to improve. We get there by training on a
deliberately small, noisy, multi-task dataset: the scripted experts run with action noise (and optional
hesitation), only successful episodes are kept, and the count per task is limited.

Everything is seeded. A task's demos are collected in blocks of `block_size`; block `k` owns the seeds
from `first_seed + k * block_stride` and tries them in order (failed attempts use up a seed too). So the
same `DemoConfig` always gives the same dataset, whether its blocks run one after the other or side by side
in several processes (`pld pretrain --workers`). Demo seeds stay below `EVAL_FIRST_SEED`, so evaluation
never sees a training scene.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pld_vla_server.dataset import MANIFEST, Episode, manifest_records, save_episodes

# Evaluation seeds start here; demo seeds must stay below (checked in DemoConfig).
EVAL_FIRST_SEED = 10_000
COLLECTION_REPORT = "collection.json"
# Bumped when what an episode records changes (2: the privileged task state), so old caches are not reused.
DATASET_FORMAT = 2
LABELS = ("intended", "executed")


@dataclass(frozen=True)
class DemoConfig:
    """What to collect. Demo counts are kept (successful) episodes, not attempts: `demos_per_task` for
    every task without its own entry in `task_demos` (e.g. `{"pick_cube": 100}`)."""

    tasks: tuple[str, ...] = ("pick_cube", "peg_insertion")
    demos_per_task: int = 300
    task_demos: dict[str, int] = field(default_factory=dict)
    noise: float = 0.05
    hesitation: float = 0.0
    first_seed: int = 0
    image_size: int = 128
    # "executed": record what ran; "intended": record the expert's noiseless action while the noisy one runs
    # (DART: the noise visits off-course states and the labels say how to get back). "executed" is the
    # default because the published base-policy figures were made with it; "intended" did not lift
    # peg_insertion off 0 % at noise 0.2 (package README, Tuning).
    labels: str = "executed"
    # give up on a block after this many attempts per wanted demo (a broken expert must not loop forever)
    max_attempts_per_demo: float = 4.0
    # demos per collection block (the unit that runs in parallel; see the module docstring)
    block_size: int = 75

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not self.tasks:
            raise ValueError("tasks must not be empty")
        unknown = sorted(set(self.task_demos) - set(self.tasks))
        if unknown:
            raise ValueError(f"task_demos names tasks that are not collected: {unknown}")
        object.__setattr__(self, "task_demos", {t: int(n) for t, n in sorted(self.task_demos.items())})
        if min([self.demos_per_task, *self.task_demos.values()]) < 1:
            raise ValueError("demos_per_task and every task_demos count must be at least 1")
        if not (0.0 <= self.noise <= 1.0 and 0.0 <= self.hesitation <= 1.0):
            raise ValueError("noise and hesitation must be in [0, 1]")
        if self.labels not in LABELS:
            raise ValueError(f"labels must be one of {LABELS}, got {self.labels!r}")
        if self.first_seed < 0 or self.max_attempts_per_demo < 1.0 or self.block_size < 1:
            raise ValueError("first_seed must be >= 0, max_attempts_per_demo >= 1 and block_size >= 1")
        if self.first_seed + self.seed_span > EVAL_FIRST_SEED:
            raise ValueError(
                f"demo seeds would reach the evaluation seeds (>= {EVAL_FIRST_SEED}); "
                "lower first_seed or demos_per_task"
            )

    def demos_for(self, task: str) -> int:
        return self.task_demos.get(task, self.demos_per_task)

    @property
    def total_demos(self) -> int:
        return sum(self.demos_for(task) for task in self.tasks)

    @property
    def block_stride(self) -> int:
        """Seeds owned by one block: enough for `max_attempts_per_demo` attempts per wanted demo."""
        return int(np.ceil(self.block_size * self.max_attempts_per_demo))

    def blocks(self, task: str) -> list[DemoBlock]:
        total = self.demos_for(task)
        blocks = []
        for index, start in enumerate(range(0, total, self.block_size)):
            wanted = min(self.block_size, total - start)
            first_seed = self.first_seed + index * self.block_stride
            attempts = int(np.ceil(wanted * self.max_attempts_per_demo))
            blocks.append(DemoBlock(task, index, wanted, first_seed, attempts))
        return blocks

    @property
    def seed_span(self) -> int:
        """Seeds from `first_seed` that any task may use."""
        return max(len(self.blocks(task)) for task in self.tasks) * self.block_stride

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DemoConfig:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown demo options: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["tasks"] = list(self.tasks)
        if not self.task_demos:
            del values["task_demos"]  # listed only when set, like the task names in `cache_key`
        return values

    def cache_key(self) -> str:
        """A readable, unique directory name for this configuration (the dataset cache key)."""
        payload = {**self.to_dict(), "dataset_format": DATASET_FORMAT}
        digest = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]
        tasks = "+".join(f"{t}{self.demos_for(t)}" if t in self.task_demos else t for t in self.tasks)
        return (
            f"{tasks}-n{self.demos_per_task}-noise{self.noise:g}-hes{self.hesitation:g}"
            f"-seed{self.first_seed}-{digest}"
        )


@dataclass(frozen=True)
class DemoBlock:
    """One collection job: `wanted` successful demos of `task`, trying the seeds from `first_seed` on."""

    task: str
    index: int
    wanted: int
    first_seed: int
    max_attempts: int

    @property
    def name(self) -> str:
        return f"b{self.index}"


def run_expert_episode(
    env, task: str, seed: int, noise: float, hesitation: float, labels: str = "executed"
) -> Episode:
    """One seeded expert episode with its camera frames; `success` says whether to keep it.

    The noisy action always runs; `labels` chooses what is recorded as `actions` (see `DemoConfig`)."""
    from pld_sim.experts import ExpertConfig, make_expert

    obs, info = env.reset(seed=seed)
    expert = make_expert(env, ExpertConfig(noise=noise, hesitation=hesitation), seed=seed)
    images: dict[str, list[np.ndarray]] = {cam: [] for cam in obs["images"]}
    proprio, actions, privileged = [], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(expert.act(obs), dtype=np.float32)
        for cam, frame in obs["images"].items():
            images[cam].append(frame)
        proprio.append(obs["proprio"])
        privileged.append(obs["privileged"])
        actions.append(expert.intended_action if labels == "intended" else action)
        obs, _, terminated, truncated, info = env.step(action)
    return Episode(
        images={cam: np.stack(frames) for cam, frames in images.items()},
        proprio=np.stack(proprio).astype(np.float32),
        actions=np.stack(actions).astype(np.float32),
        instruction=obs["instruction"],
        task=task,
        seed=seed,
        success=bool(info["success"]),
        source="scripted_expert",
        meta={"noise": noise, "hesitation": hesitation, "seed": seed, "expert": task, "labels": labels},
        privileged=np.stack(privileged).astype(np.float32),
    )


def collect_block(
    cfg: DemoConfig,
    block: DemoBlock,
    out_dir: Path,
    on_episode: Callable[[int, int, bool], None] | None = None,
) -> dict[str, Any]:
    """Collect one block's successful demos into the fresh dataset `out_dir`.

    Episodes are written as they finish, so memory stays at one episode. Failed attempts are counted
    and discarded. `on_episode(kept, discarded, success)` is called after every attempt.
    """
    import pld_sim

    if (out_dir / MANIFEST).exists():
        raise FileExistsError(f"{out_dir} already holds a dataset; collect into a fresh directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    env = pld_sim.make(block.task, image_size=cfg.image_size, render_images=True)
    kept, discarded, steps, seeds = 0, 0, 0, []
    for attempt in range(block.max_attempts):
        if kept >= block.wanted:
            break
        seed = block.first_seed + attempt
        episode = run_expert_episode(env, block.task, seed, cfg.noise, cfg.hesitation, cfg.labels)
        if episode.success:
            save_episodes([episode], out_dir)
            kept += 1
            steps += len(episode)
            seeds.append(seed)
        else:
            discarded += 1
        if on_episode is not None:
            on_episode(kept, discarded, episode.success)
    env.close()
    if kept < block.wanted:
        print(
            f"collect_demos: {block.task} block {block.index}: only {kept}/{block.wanted} successful demos "
            f"in {block.max_attempts} attempts (noise {cfg.noise}); continuing with what there is"
        )
    return {
        "kept": kept,
        "discarded": discarded,
        "steps": steps,
        "seeds": seeds,
        "seed_range": [block.first_seed, block.first_seed + kept + discarded - 1],
        "wall_time_s": round(time.perf_counter() - start, 1),
        "cpu_time_s": round(time.process_time() - cpu_start, 1),
    }


def task_report(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """One task's collection report from its blocks' reports (in block order)."""
    kept, discarded = sum(b["kept"] for b in blocks), sum(b["discarded"] for b in blocks)
    return {
        "kept": kept,
        "discarded": discarded,
        "attempts": kept + discarded,
        "steps": sum(b["steps"] for b in blocks),
        "seeds": [seed for b in blocks for seed in b["seeds"]],
        "seed_ranges": [b["seed_range"] for b in blocks],
        "expert_success_rate": round(kept / max(1, kept + discarded), 3),
        "wall_time_s": round(sum(b["wall_time_s"] for b in blocks), 1),
        "cpu_time_s": round(sum(b["cpu_time_s"] for b in blocks), 1),
        "blocks_cpu_time_s": [b["cpu_time_s"] for b in blocks],
    }


def collect_task(
    cfg: DemoConfig,
    task: str,
    task_dir: Path,
    on_episode: Callable[[int, int, bool], None] | None = None,
) -> dict[str, Any]:
    """Collect every block of `task` one after the other into `task_dir/<block>/`; the task's report."""
    reports = []
    for block in cfg.blocks(task):
        kept_before = sum(r["kept"] for r in reports)
        discarded_before = sum(r["discarded"] for r in reports)

        def on_block_episode(
            kept: int,
            discarded: int,
            success: bool,
            kept_before=kept_before,
            discarded_before=discarded_before,
        ) -> None:
            if on_episode is not None:
                on_episode(kept_before + kept, discarded_before + discarded, success)

        reports.append(collect_block(cfg, block, task_dir / block.name, on_block_episode))
    return task_report(reports)


def merge_tasks(cfg: DemoConfig, root: Path, per_task: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Make `root` one dataset over its per-block sub-datasets `root/<task>/<block>/` (no episode is
    copied: the top-level manifest points at `<task>/<block>/episode_*.npz`); write the collection report."""
    records = []
    for task in cfg.tasks:
        for block in cfg.blocks(task):
            for record in manifest_records(root / task / block.name):
                records.append({**record, "file": f"{task}/{block.name}/{record['file']}"})
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"episodes": records}, indent=1))
    tmp.replace(root / MANIFEST)
    report = {
        "config": cfg.to_dict(),
        "dataset": str(root),
        "episodes": sum(t["kept"] for t in per_task.values()),
        "steps": sum(t["steps"] for t in per_task.values()),
        "discarded": sum(t["discarded"] for t in per_task.values()),
        "per_task": per_task,
        "wall_time_s": round(sum(t["wall_time_s"] for t in per_task.values()), 1),
        "cpu_time_s": round(sum(t["cpu_time_s"] for t in per_task.values()), 1),
    }
    (root / COLLECTION_REPORT).write_text(json.dumps(report, indent=1) + "\n")
    return report


def collect_demos(cfg: DemoConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Collect every task of `cfg` one after the other into `out_dir`; returns the collection report."""
    from tqdm import tqdm

    per_task: dict[str, dict[str, Any]] = {}
    with tqdm(total=cfg.total_demos, desc="demos", unit="demo", disable=not progress) as bar:
        for task in cfg.tasks:

            def on_episode(kept: int, discarded: int, success: bool, task: str = task) -> None:
                bar.update(int(success))
                bar.set_postfix(task=task, discarded=discarded)

            per_task[task] = collect_task(cfg, task, out_dir / task, on_episode)
    return merge_tasks(cfg, out_dir, per_task)


Collector = Callable[[DemoConfig, Path], dict[str, Any]]


def cached_or_collect(
    cfg: DemoConfig, cache_root: Path, progress: bool = True, collector: Collector | None = None
) -> tuple[Path, dict, bool]:
    """The dataset for `cfg` under `cache_root`, collected only when no complete copy exists.

    Returns (dataset dir, collection report, reused?). A copy counts as complete when its report exists
    and names the same config; an interrupted collection is thrown away and redone (it is cheap).
    `collector(cfg, directory)` replaces the sequential `collect_demos` (e.g. one process per task).
    """
    directory = cache_root / cfg.cache_key()
    cache_root.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_root / f"{cfg.cache_key()}.lock", progress):
        return _cached_or_collect_locked(cfg, directory, progress, collector)


@contextlib.contextmanager
def _exclusive(lock_path: Path, progress: bool) -> Iterator[None]:
    """One collector per dataset: a second `pld pretrain` with the same demo settings waits for the first
    and then reuses its dataset (two writers of one `.partial` directory would wreck each other's)."""
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print(f"waiting for another process that collects {lock_path.stem} ...", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached_or_collect_locked(
    cfg: DemoConfig, directory: Path, progress: bool, collector: Collector | None
) -> tuple[Path, dict, bool]:
    report_path = directory / COLLECTION_REPORT
    if report_path.exists():
        report = json.loads(report_path.read_text())
        if report.get("config") == cfg.to_dict():
            return directory, report, True
    partial = directory.with_name(directory.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    collect = collector or (lambda c, d: collect_demos(c, d, progress=progress))
    report = collect(cfg, partial)
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)
    report["dataset"] = str(directory)
    (directory / COLLECTION_REPORT).write_text(json.dumps(report, indent=1) + "\n")
    return directory, report, False


__all__ = [
    "COLLECTION_REPORT",
    "EVAL_FIRST_SEED",
    "DemoBlock",
    "DemoConfig",
    "cached_or_collect",
    "collect_block",
    "collect_demos",
    "collect_task",
    "merge_tasks",
    "run_expert_episode",
    "task_report",
]
