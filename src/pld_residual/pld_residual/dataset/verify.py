"""`pld dataset verify` and `pld dataset info`: check every bag of a dataset, summarise what it holds.

Verification decodes every message of every indexed bag and compares it with its index record. A broken
bag is reported by name; `fix=True` moves it to `broken/` and rewrites the index from the good bags
(also from bags on disk that the index lost), so training reads the rest of the dataset unchanged.
"""

from __future__ import annotations

import fcntl
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pld_residual.dataset.index import INDEX, bag_digest, load_index, save_index, unindexed_bags
from pld_residual.dataset.reader import read_episode
from pld_residual.dataset.writer import LOCK

BROKEN = "broken"
_CHECKED_KEYS = ("episode_id", "task", "seed", "t_base", "length", "success", "source")


def _check_bag(root: Path, record: dict[str, Any], check_digest: bool = True) -> str:
    """'' when the bag decodes and agrees with its record, else what is wrong."""
    bag = root / record["bag"]
    if not bag.is_dir():
        return "missing from disk"
    if check_digest and "sha256" in record and bag_digest(bag) != record["sha256"]:
        return "its MCAP file changed since it was written (SHA-256 differs from the index): corrupted"
    try:
        own = read_episode(bag, decode_all=True).record
    except ValueError as exc:
        return str(exc).removeprefix(f"{record['bag']}: ")
    differing = [key for key in _CHECKED_KEYS if own.get(key) != record.get(key)]
    if differing:
        return f"the index and the bag's own record differ in {differing}"
    return ""


def verify_dataset(root: Path, fix: bool = False) -> dict[str, Any]:
    """Check every bag; with `fix`, quarantine broken ones and rebuild the index from the good ones."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no dataset at {root}")
    with open(root / LOCK, "a") as lock:
        if fix:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(
                    f"another process is writing the dataset {root}; retry when it is done"
                ) from None
        return _verify(root, fix)


def _verify(root: Path, fix: bool) -> dict[str, Any]:
    index_error = ""
    try:
        records = load_index(root)
    except ValueError as exc:
        if not fix:
            raise
        index_error, records = str(exc), []
    indexed = {record["bag"] for record in records}
    unindexed = unindexed_bags(root, records)
    good, broken = [], []
    for record in records + [r for r in unindexed if "error" not in r]:
        error = _check_bag(root, record, check_digest=record["bag"] in indexed)  # fresh digests need no check
        (broken if error else good).append({**record, "error": error} if error else record)
    broken += [r for r in unindexed if "error" in r]
    report = {
        "dataset": str(root),
        "indexed": len(records),
        "ok": len([r for r in good if r["bag"] in indexed]),
        "broken": [{"bag": r["bag"], "error": r["error"]} for r in broken],
        "unindexed": [r["bag"] for r in unindexed],
        "fixed": False,
    }
    if index_error:
        report["index_error"] = index_error
    if fix and (broken or unindexed or index_error):
        quarantine = root / BROKEN
        for record in broken:
            if (root / record["bag"]).exists():
                quarantine.mkdir(exist_ok=True)
                shutil.move(str(root / record["bag"]), quarantine / record["bag"])
        save_index(root, good)
        report.update(fixed=True, ok=len(good), indexed=len(good))
    return report


def dataset_info(root: Path) -> dict[str, Any]:
    """Per-task counts, success rate, lengths, T_base, provenance mix and sources, from the index alone."""
    root = Path(root)
    records = load_index(root)
    if not records and not (root / INDEX).exists():
        raise FileNotFoundError(f"no dataset index at {root / INDEX}")
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_task[record["task"]].append(record)
    tasks = {}
    for task, group in sorted(by_task.items()):
        lengths = np.array([r["length"] for r in group])
        t_base = np.array([r["t_base"] for r in group])
        provenance: Counter[str] = Counter()
        for record in group:
            provenance.update(record.get("provenance", {}))
        steps = sum(provenance.values())
        tasks[task] = {
            "episodes": len(group),
            "successes": sum(r["success"] for r in group),
            "steps": int(lengths.sum()),
            "length": {
                "mean": round(float(lengths.mean()), 1),
                "min": int(lengths.min()),
                "max": int(lengths.max()),
            },
            "t_base": {
                "mean": round(float(t_base.mean()), 1),
                "min": int(t_base.min()),
                "max": int(t_base.max()),
            },
            "provenance": {k: round(v / steps, 3) for k, v in sorted(provenance.items())} if steps else {},
            "sources": dict(Counter(r["source"] for r in group)),
            "instructions": sorted({r["instruction"] for r in group}),
        }
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return {"dataset": str(root), "episodes": len(records), "bytes": size, "tasks": tasks}
