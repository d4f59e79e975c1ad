"""What each job of `pld pretrain` does: train one head, evaluate it (in parts), collect one demo block.

A job runs in the parent process or in a worker (`pretrain_runner`). Everything it produces goes to files
under --out, which is how finished work is found again: a job whose result is on disk with the same key
returns it instead of redoing it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pld_vla_server.pretrain import PretrainConfig

BACKEND = "small_vla"
HEADS = ("flow", "ar")
TRAIN_REPORT = "pretrain.json"
Report = Callable[[str, int, int, dict[str, Any]], None]  # (bar name, done, total, postfix)


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
    files = sorted((package / "small_vla").glob("*.py")) + sorted(package.glob("pretrain*.py"))
    files += [package / name for name in ("collect_demos.py", "evaluation.py", "dataset.py")]
    digest = hashlib.sha1()
    for file in files:
        if file.is_file():
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def worker_setup(threads: int) -> None:
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


def mark_worker() -> None:
    """Called first thing in a worker process: CPU times then count from process start."""
    global _IN_WORKER
    _IN_WORKER = True


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
    previous = read_json(head_dir / TRAIN_REPORT)
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
    write_json(tmp / TRAIN_REPORT, record)
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
    trained = read_json(head_dir / TRAIN_REPORT)
    if not trained or not trained.get("complete"):
        raise FileNotFoundError(f"no finished checkpoint in {head_dir}")
    key = _eval_key(cfg, trained, task)
    merged = read_json(_eval_path(out, head, task))
    if merged and merged.get("key") == key:
        return merged
    first, end = _part_range(cfg.eval_episodes, part, parts)
    part_key = {**key, "part": [part, parts]} if parts > 1 else key
    path = _eval_path(out, head, task, part, parts)
    previous = read_json(path)
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
    write_json(path, result)
    return result


def merge_eval_parts(cfg: PretrainConfig, head: str, task: str, out: Path) -> dict[str, Any] | None:
    """Join the part files of one (head, task) evaluation into `<task>.json` once all of them exist (the
    same result a single job would have written, plus each part's CPU time); None while parts are missing."""
    from pld_sim.expert_eval import wilson_interval

    parts = eval_parts(cfg.eval_episodes)
    if parts == 1:
        return read_json(_eval_path(out, head, task))
    paths = [_eval_path(out, head, task, part, parts) for part in range(parts)]
    results = [read_json(path) for path in paths]
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
    write_json(_eval_path(out, head, task), merged)
    for path in paths:
        path.unlink()
    return merged


def block_report_path(collect_dir: Path, task: str, index: int) -> Path:
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
    write_json(block_report_path(collect_dir, task, index), result)
    return result
