"""Flatten a replay batch into the flat-vector layout the residual SAC learner consumes.

The buffer keeps observations as named fields (so images can stay uint8 and specs can grow); the learner
in `agent/learner.py` takes `obs` [..., D] as one float32 vector with the base action separate, because the
actor conditions on the base action and the critic on the combined action. This adapter is the one place
that knows both layouts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pld_residual.replay.buffer import Batch

LEARNER_KEYS = (
    "obs",
    "base_action",
    "action",
    "reward",
    "discount",
    "next_obs",
    "next_base_action",
    "mc_return",
)


def to_learner_batch(
    batch: Batch,
    obs_fields: Sequence[str] = ("features", "proprio"),
    base_action_field: str = "base_action",
) -> Batch:
    """`obs`/`next_obs` = float32 concatenation of `obs_fields`; `base_action`/`next_base_action` split out.

    Works for [B, ...] and [n, B, ...] batches. Keeps `action`, `reward`, `discount`, `mc_return` and, from
    a `HybridSampler`, `is_offline`; extras are dropped. Only float fields can be flattened (images need the
    learner's encoder path instead).
    """
    out: Batch = {}
    for prefix, key in (("", "obs"), ("next_", "next_obs")):
        fields = batch[key]
        for name in (*obs_fields, base_action_field):
            if name not in fields:
                raise KeyError(
                    f"to_learner_batch: observation field {name!r} not in batch ({sorted(fields)})"
                )
            if fields[name].dtype.kind != "f":
                raise ValueError(
                    f"to_learner_batch: field {name!r} has dtype {fields[name].dtype}; only float fields can "
                    "be flattened into the learner's obs vector"
                )
        lead = fields[base_action_field].shape[:-1]
        parts = [fields[name].reshape(*lead, -1) for name in obs_fields]
        out[key] = np.concatenate(parts, axis=-1).astype(np.float32, copy=False)
        out[f"{prefix}base_action"] = fields[base_action_field].astype(np.float32, copy=False)
    for key in ("action", "reward", "discount", "mc_return", "is_offline"):
        if key in batch:
            out[key] = batch[key]
    return out
