"""A classifier on disk: `classifier.json` (config, thresholds, metrics, parameter hash) + `params.msgpack`.

The hash catches a truncated or corrupted parameter file before it can judge anything; every failure to
load is a `CheckpointError` that names the directory and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import flax.serialization

from pld_residual.agent.io import atomic_write  # one atomic-write helper for every checkpoint
from pld_reward.config import ClassifierConfig

META_FILE = "classifier.json"
PARAMS_FILE = "params.msgpack"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A classifier directory that cannot be loaded (missing, corrupted, or from another format)."""


def save(
    directory: str | os.PathLike[str], cfg: ClassifierConfig, params: Any, calibration: dict[str, Any]
) -> Path:
    """Write parameters first, then the metadata that vouches for them (a crash leaves the old pair)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    blob = flax.serialization.to_bytes(params)
    atomic_write(out / PARAMS_FILE, blob)
    meta = {
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "calibration": calibration,
        "params_sha256": hashlib.sha256(blob).hexdigest(),
    }
    atomic_write(out / META_FILE, json.dumps(meta, indent=1, sort_keys=True).encode())
    return out


def load(
    directory: str | os.PathLike[str], template: Any | None = None
) -> tuple[ClassifierConfig, Any, dict[str, Any]]:
    """(config, params, calibration). `template`: a params tree to restore into (shapes are checked)."""
    folder = Path(directory)
    meta_path, params_path = folder / META_FILE, folder / PARAMS_FILE
    if not meta_path.is_file() or not params_path.is_file():
        raise CheckpointError(
            f"no classifier at {folder}: expected {META_FILE} and {PARAMS_FILE} "
            "(train one with `pld reward train`)"
        )
    try:
        meta = json.loads(meta_path.read_text())
        version = meta["format_version"]
        cfg = ClassifierConfig.from_dict(meta["config"])
        calibration = meta["calibration"]
        expected_hash = meta["params_sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"classifier {meta_path} is corrupted or not a classifier: {exc}") from exc
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"classifier {folder} has format {version}; this version reads {FORMAT_VERSION}"
        )
    blob = params_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != expected_hash:
        raise CheckpointError(
            f"classifier {params_path} is corrupted: its hash differs from the one in {META_FILE} "
            f"({len(blob)} bytes on disk)"
        )
    if template is None:
        from pld_reward.model import init_params

        template = init_params(cfg)
    try:
        params = flax.serialization.from_bytes(template, blob)
    except Exception as exc:  # msgpack errors, shape mismatches
        raise CheckpointError(f"classifier {params_path} does not match its config: {exc}") from exc
    thresholds = calibration.get("thresholds") if isinstance(calibration, dict) else None
    if (
        not isinstance(thresholds, list)
        or len(thresholds) != cfg.num_stages
        or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) for t in thresholds
        )
    ):
        raise CheckpointError(
            f"classifier {meta_path}: expected {cfg.num_stages} finite threshold(s), got {thresholds!r}"
        )
    return cfg, params, calibration
