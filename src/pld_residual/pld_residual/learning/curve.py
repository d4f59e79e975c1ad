"""The learning curve as `curve.json` and `curve.png`, rewritten after every evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pld_residual.agent.io import atomic_write

CURVE_JSON = "curve.json"
CURVE_PNG = "curve.png"


def write_curve(out: Path, points: list[dict[str, Any]], title: str) -> None:
    """`points`: dicts with env_steps, success_rate, ci95 [low, high], wall_time_s (and more)."""
    payload = {"title": title, "points": points}
    atomic_write(out / CURVE_JSON, (json.dumps(payload, indent=2) + "\n").encode())
    _plot(out / CURVE_PNG, points, title)


def _plot(path: Path, points: list[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["env_steps"] for p in points]
    rate = [p["success_rate"] for p in points]
    low = [p["ci95"][0] for p in points]
    high = [p["ci95"][1] for p in points]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.fill_between(steps, low, high, alpha=0.25, label="95 % CI (Wilson)")
    ax.plot(steps, rate, marker="o", label="success rate")
    ax.set_xlabel("online env steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
