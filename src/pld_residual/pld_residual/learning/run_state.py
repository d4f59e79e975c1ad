"""Save and restore a whole learning run (learner, both buffers, loop counters, rng) for exact resumes.

A checkpoint is the directory `<run>/checkpoint/`: `learner.msgpack` (`agent.checkpoint`),
`online.npz`, `offline.npz` and `loop.json` (counters, numpy rng state, curve so far, the config).
It is written whole into `checkpoint.new/` and then swapped in by renames, so an interruption while
saving leaves the previous checkpoint readable (`checkpoint.old/` is used if the swap was cut short).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pld_residual.agent.checkpoint import load_checkpoint, save_checkpoint
from pld_residual.agent.io import atomic_write
from pld_residual.replay.buffer import ReplayBuffer

CHECKPOINT_DIR = "checkpoint"
LOOP_FILE = "loop.json"


@dataclass
class LoopCounters:
    """Everything of the loop besides the learner and the buffers (plain JSON)."""

    env_steps: int = 0
    episodes: int = 0  # online episodes started (an interrupted one counts)
    updates: int = 0  # online gradient steps
    pending_updates: int = 0  # gradient steps owed by the utd ratio, not yet run (< updates_per_call)
    train_outcomes: list[bool] = field(default_factory=list)  # success of each finished training episode
    # per non-warm-up training episode: success reached while the residual drove (not inside the base prefix)
    train_residual_outcomes: list[bool] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    next_eval_at: int = 0
    next_checkpoint_at: int = 0
    wall_time_s: float = 0.0
    rng_state: dict[str, Any] = field(default_factory=dict)
    curriculum: dict[str, Any] | None = None
    offline: dict[str, Any] = field(default_factory=dict)  # report of the offline collection
    warmstart: dict[str, Any] = field(default_factory=dict)  # report of the critic warm start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def save_run(
    run_dir: Path,
    learner_state: Any,
    online: ReplayBuffer,
    offline: ReplayBuffer,
    counters: LoopCounters,
    config: dict[str, Any],
) -> Path:
    """Write a complete checkpoint and swap it in; returns its directory."""
    final = run_dir / CHECKPOINT_DIR
    new = run_dir / f"{CHECKPOINT_DIR}.new"
    old = run_dir / f"{CHECKPOINT_DIR}.old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    save_checkpoint(learner_state, new)
    online.save(new / "online.npz")
    offline.save(new / "offline.npz")
    payload = {"config": config, "counters": counters.to_dict()}
    atomic_write(new / LOOP_FILE, (json.dumps(payload, indent=1) + "\n").encode())
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint of `run_dir`, if any."""
    for name in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.old"):
        candidate = run_dir / name
        if (candidate / LOOP_FILE).is_file():
            return candidate
    return None


def load_run(checkpoint: Path) -> tuple[Any, ReplayBuffer, ReplayBuffer, LoopCounters, dict[str, Any]]:
    """(learner state, online, offline, counters, saved config dict) of a checkpoint directory."""
    payload = json.loads((checkpoint / LOOP_FILE).read_text())
    counters = LoopCounters(**payload["counters"])
    return (
        load_checkpoint(checkpoint),
        ReplayBuffer.load(checkpoint / "online.npz"),
        ReplayBuffer.load(checkpoint / "offline.npz"),
        counters,
        payload["config"],
    )
