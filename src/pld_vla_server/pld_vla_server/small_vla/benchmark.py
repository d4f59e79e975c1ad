"""Chunk latency of a backend on a synthetic observation (used by `pld bench vla`)."""

from __future__ import annotations

import time

import numpy as np

from pld_vla_server.backends.base import VLABackend
from pld_vla_server.small_vla.synthetic import synthetic_observation


def measure_chunk_latency(backend: VLABackend, n: int = 50, warmup: int = 5) -> dict[str, float]:
    """Wall time of `predict` (validation, preprocessing, model) on a warm model: median and p99 in ms."""
    obs = synthetic_observation(backend)
    for _ in range(warmup):
        backend.predict(obs)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        backend.predict(obs)
        times.append((time.perf_counter() - start) * 1e3)
    return {
        "median_ms": float(np.median(times)),
        "p99_ms": float(np.percentile(times, 99)),
        "mean_ms": float(np.mean(times)),
        "n": n,
    }
