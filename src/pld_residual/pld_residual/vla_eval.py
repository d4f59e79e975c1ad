"""`pld eval` core: success of VLA checkpoints on seeded sim episodes, resumable, with plots.

Each (model, task) evaluation appends one JSON line per finished episode to
`<out>/episodes/<label>-<task>.jsonl`, so an interrupted evaluation continues at the next seed and the
result equals an uninterrupted one.
Seeds start at 10 000 (as everywhere in evaluation), so every model sees the same scenes.

Plots: `success.png` (success rate with its 95 % Wilson interval per model and task) and
`trajectories.png` (end-effector paths, top view and side view, of the evaluated models and of the
episodes of given datasets, like Figure 10 of the paper: how widely base, RL-expert and PLD data spread).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pld_residual.learning.evaluation import EVAL_FIRST_SEED, wilson_interval

EPISODES_DIR = "episodes"
TCP = ("tcp_x", "tcp_y", "tcp_z")


def _read_done(path: Path) -> list[dict[str, Any]]:
    """Finished episodes of an earlier run; a line cut by an interruption is dropped."""
    if not path.exists():
        return []
    done = []
    for line in path.read_text().splitlines():
        try:
            done.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return done


def evaluate_model(
    backend: Any,
    label: str,
    task: str,
    episodes: int,
    out: Path,
    execute_steps: int | None,
    progress: bool = True,
) -> dict[str, Any]:
    """`episodes` episodes of `task` from seed 10 000 on, continuing an interrupted evaluation."""
    from pld_vla_server.evaluation import evaluate_backend

    path = Path(out) / EPISODES_DIR / f"{label}-{task}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _read_done(path)[:episodes]
    path.write_text("".join(json.dumps(o) + "\n" for o in done))  # drops a torn last line
    if len(done) < episodes:
        with open(path, "a") as handle:

            def keep(outcome: dict[str, Any]) -> None:
                handle.write(json.dumps(outcome) + "\n")
                handle.flush()

            evaluate_backend(
                backend, task, episodes - len(done), EVAL_FIRST_SEED + len(done), execute_steps,
                progress=progress, on_episode=keep, desc=f"eval {label} {task}", trace=True,
            )  # fmt: skip
        done = _read_done(path)
    successes = sum(o["success"] for o in done)
    low, high = wilson_interval(successes, len(done))
    return {
        "model": label,
        "model_id": backend.model_id,
        "task": task,
        "episodes": len(done),
        "successes": successes,
        "success_rate": successes / len(done),
        "ci95": [round(low, 4), round(high, 4)],
        "mean_length": round(float(np.mean([o["length"] for o in done])), 1),
        "seeds": [done[0]["seed"], done[-1]["seed"]],
    }


def model_paths(out: Path, label: str, task: str) -> list[np.ndarray]:
    """TCP paths [T, 3] of a model's evaluation episodes (from its episode log)."""
    return [np.asarray(o["tcp_path"]) for o in _read_done(Path(out) / EPISODES_DIR / f"{label}-{task}.jsonl")]


def dataset_paths(root: Path, task: str | None = None, limit: int = 50) -> dict[str, list[np.ndarray]]:
    """TCP paths of a PLD dataset's successful episodes, grouped by source (at most `limit` each)."""
    from pld_residual.dataset.index import load_index
    from pld_residual.dataset.reader import read_episode

    groups: dict[str, list[np.ndarray]] = {}
    for record in load_index(root):
        if not record["success"] or (task and record["task"] != task):
            continue
        if len(groups.setdefault(record["source"], [])) >= limit:
            continue
        episode = read_episode(Path(root) / record["bag"])
        index = [episode.proprio_names.index(name) for name in TCP]
        groups[record["source"]].append(episode.proprio[:, index])
    return groups


def plot_success(results: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Bars of success rate with 95 % intervals, grouped by task, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in results})
    models = list(dict.fromkeys(r["model"] for r in results))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(4, 1.8 * len(tasks) * max(1, len(models) / 2)), 3.2))
    for m, model in enumerate(models):
        for t, task in enumerate(tasks):
            match = [r for r in results if r["model"] == model and r["task"] == task]
            if not match:
                continue
            r = match[0]
            x = t + (m - (len(models) - 1) / 2) * width
            err = [[r["success_rate"] - r["ci95"][0]], [r["ci95"][1] - r["success_rate"]]]
            ax.bar(x, r["success_rate"], width, color=f"C{m}", label=model if t == 0 else None)
            ax.errorbar(x, r["success_rate"], yerr=err, color="k", capsize=3, lw=1)
            ax.text(x, r["success_rate"] + 0.02, f"{r['success_rate']:.0%}", ha="center", fontsize=7)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(f"success ({results[0]['episodes']} episodes, 95 % CI)" if results else "success")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_trajectories(groups: Mapping[str, Sequence[np.ndarray]], path: Path, title: str = "") -> Path:
    """End-effector paths per group: top view (x-y) and side view (x-z), one colour per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, side) = plt.subplots(1, 2, figsize=(9, 4))
    for k, (name, paths) in enumerate(groups.items()):
        for i, xyz in enumerate(paths):
            label = f"{name} ({len(paths)})" if i == 0 else None
            top.plot(xyz[:, 0], xyz[:, 1], color=f"C{k}", alpha=0.35, lw=0.8, label=label)
            side.plot(xyz[:, 0], xyz[:, 2], color=f"C{k}", alpha=0.35, lw=0.8)
    top.set_xlabel("x [m]")
    top.set_ylabel("y [m]")
    top.set_title("top view")
    top.set_aspect("equal", adjustable="datalim")
    side.set_xlabel("x [m]")
    side.set_ylabel("z [m]")
    side.set_title("side view")
    top.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
