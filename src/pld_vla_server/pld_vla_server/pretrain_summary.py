"""`summary.json` and `pretrain.png` of a `pld pretrain` run, built from the per-head files (the single
source of truth), and the estimate of the run's wall time on idle cores.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pld_vla_server.pretrain_jobs import TRAIN_REPORT, git_commit, read_json, write_json

if TYPE_CHECKING:
    from pld_vla_server.pretrain import PretrainConfig

SUMMARY = "summary.json"
PLOT = "pretrain.png"
TARGET_BAND = (0.20, 0.75)  # success rate of a "modest generalist" on every task


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
        trained = read_json(out / head / TRAIN_REPORT)
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
            result = read_json(out / head / "eval" / f"{task}.json")
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
        trained = read_json(out / head / TRAIN_REPORT) if summary["heads"][head].get("trained") else None
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
    write_json(out / SUMMARY, summary)
    plot_summary(summary, out, out / PLOT)


def print_summary(summary: dict[str, Any], out: Path) -> None:
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
