"""How `pld pretrain` runs its jobs: in this process, or side by side in worker processes that report
progress to one set of tqdm bars (with ETA). A failed job does not lose the others' results.
"""

from __future__ import annotations

import json
import os
import queue as queue_module
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pld_vla_server.pretrain_jobs import (
    Report,
    block_report_path,
    collect_block_job,
    evaluate_head,
    mark_worker,
    read_json,
    train_head,
    worker_setup,
)

if TYPE_CHECKING:
    from pld_vla_server.pretrain import PretrainConfig


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
        from pld_vla_server.pretrain import PretrainConfig  # (it imports this module)

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
    """Entry point of a worker process: `python -m pld_vla_server.pretrain_runner --worker '<json>'`.

    Workers are fresh interpreters started with subprocess (not multiprocessing, whose spawn mode
    re-runs the `pld` launcher script), so no simulator, EGL or torch state is inherited.
    """
    mark_worker()
    _exit_with_parent()
    payload = json.loads(spec)
    ctx = JobContext.from_dict(payload["context"])
    job = Job(**payload["job"])
    if job.kind != "collect":
        worker_setup(ctx.cfg.threads)
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
                worker_setup(ctx.cfg.threads)
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
                    [sys.executable, "-m", "pld_vla_server.pretrain_runner", "--worker", spec],
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
        paths = [block_report_path(directory, task, k) for k in range(count)]
        per_task[task] = task_report([read_json(path) for path in paths])
        for path in paths:
            path.unlink()
    report = merge_tasks(cfg.demos, directory, per_task)
    report["wall_time_s"] = round(time.perf_counter() - start, 1)  # blocks ran side by side
    return report


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker_main(sys.argv[2]))
    sys.exit("usage: python -m pld_vla_server.pretrain_runner --worker '<json>' (started by pld pretrain)")
