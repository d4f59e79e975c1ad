"""File and tree helpers shared by the policy and learner checkpoints: atomic writes, shape checks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import flax.serialization
import numpy as np


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`.

    A reader (or a run resumed after a crash) sees the old file or the new one, never half of one.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_tree(template: Any, candidate: Any, what: str = "parameter") -> None:
    """Raise ValueError naming the first path whose presence or shape differs between two trees."""
    expected = leaf_shapes(flax.serialization.to_state_dict(template))
    got = leaf_shapes(flax.serialization.to_state_dict(candidate))
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise ValueError(f"{what} tree mismatch: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, shape in expected.items():
        if got[name] != shape:
            raise ValueError(f"{what} {name}: expected shape {shape}, got {got[name]}")


def leaf_shapes(tree: Any, prefix: str = "") -> dict[str, tuple[int, ...] | None]:
    """Flatten a nested state dict into 'a/b/c' -> shape (None for a non-array leaf)."""
    if isinstance(tree, dict):
        out: dict[str, tuple[int, ...] | None] = {}
        for key, value in tree.items():
            out.update(leaf_shapes(value, f"{prefix}/{key}" if prefix else str(key)))
        return out
    if isinstance(tree, str | bytes) or tree is None:
        return {prefix: None}
    return {prefix: tuple(np.shape(tree))}  # Python scalars (e.g. a fresh TrainState.step) count as ()
