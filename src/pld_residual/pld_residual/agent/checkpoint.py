"""Save and restore the whole learner state (parameters, optimiser moments, target critic, rng, step).

A resumed run must continue exactly where it stopped, so everything in the `ResidualSACState` pytree is
written, with the config and dimensions needed to rebuild its structure. The state and its metadata go
into ONE msgpack file written atomically, so an interruption mid-save leaves the previous checkpoint
whole; `learner.json` beside it is a human-readable copy of the metadata only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from pld_residual.agent import learner
from pld_residual.agent.config import ResidualSACConfig
from pld_residual.agent.io import atomic_write, check_tree

CHECKPOINT_FILE = "learner.msgpack"
META_FILE = "learner.json"
CHECKPOINT_FORMAT = "pld-residual-sac-learner"
_FORMAT_VERSION = 1


def save_checkpoint(state: learner.ResidualSACState, directory: str | os.PathLike[str]) -> Path:
    """Write `directory/learner.msgpack` (+ `learner.json`) atomically; returns the msgpack path."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": _FORMAT_VERSION,
        "obs_dim": state.obs_dim,
        "step": int(state.step),
        "config": state.config.to_dict(),
    }
    host_state = jax.tree.map(np.asarray, flax.serialization.to_state_dict(state))
    blob = flax.serialization.msgpack_serialize({"meta": json.dumps(meta), "state": host_state})
    atomic_write(path / CHECKPOINT_FILE, blob)
    atomic_write(path / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    return path / CHECKPOINT_FILE


def load_checkpoint(directory: str | os.PathLike[str]) -> learner.ResidualSACState:
    """Rebuild the state saved by `save_checkpoint`; updates from it match the uninterrupted run."""
    file = Path(directory) / CHECKPOINT_FILE
    if not file.is_file():
        raise ValueError(f"{directory} holds no learner checkpoint ({CHECKPOINT_FILE} missing)")
    try:
        payload = flax.serialization.msgpack_restore(file.read_bytes())
        meta = json.loads(payload["meta"])
        saved: Any = payload["state"]
    except Exception as exc:
        raise ValueError(f"{file} is not a readable learner checkpoint ({exc})") from exc
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{file}: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    config = ResidualSACConfig.from_dict(meta["config"])
    template = learner.create(config, int(meta["obs_dim"]))
    if isinstance(saved, dict) and config.actor_ema is None:
        saved.setdefault("actor_ema_params", None)  # checkpoints written before actor_ema existed
    check_tree(template, saved, what=f"{file}: learner state")
    restored = flax.serialization.from_state_dict(template, saved)
    return jax.tree.map(jnp.asarray, restored)
