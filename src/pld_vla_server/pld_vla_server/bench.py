"""`pld bench vla`: action-chunk latency of a VLA backend in-process, and through the server node over DDS.

For each head of the small VLA (`flow`, `ar`; or the one backend given with `--backend`) it reports the
backend's own chunk latency (`measure_chunk_latency`) next to the end-to-end time of the same backend
behind the server node in another process: observation published -> ActionChunk with the same stamp
received. Their difference is what ROS costs. Prints JSON keyed by head; no pass/fail here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # backends import torch: not at `pld --help` / `pld bench sim` time
    from pld_vla_server.backends import VLABackend

HEADS = ("flow", "ar")


@dataclass(frozen=True)
class VLABenchConfig:
    backend: str = "small_vla"
    heads: tuple[str, ...] = HEADS  # small_vla only: one result per head
    checkpoint: str = ""  # small_vla: a trained model instead of random init (its head is its own)
    options: dict[str, Any] = field(default_factory=dict)  # extra backend options
    count: int = 50  # observations per head, in-process and over DDS
    seconds: float = 60.0  # wall-time bound of the DDS part of each head
    startup_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        from pld_vla_server.backends import BACKENDS

        BACKENDS.lookup(self.backend)
        if self.count < 2:
            raise ValueError(f"count must be at least 2, got {self.count}")
        if self.seconds <= 0:
            raise ValueError(f"seconds must be positive, got {self.seconds}")
        if self.checkpoint and not Path(self.checkpoint).exists():
            raise ValueError(f"checkpoint {self.checkpoint!r} does not exist")
        if self.backend == "small_vla" and not self.checkpoint:
            unknown = sorted(set(self.heads) - set(HEADS))
            if unknown or not self.heads:
                raise ValueError(f"heads must be a non-empty subset of {list(HEADS)}, got {list(self.heads)}")

    def variants(self) -> dict[str, dict[str, Any]]:
        """Result key -> server parameters (backend, options or checkpoint)."""
        if self.checkpoint:
            return {"checkpoint": {"backend": self.backend, "checkpoint": self.checkpoint}}
        if self.backend != "small_vla":
            return {self.backend: {"backend": self.backend, "options": dict(self.options)}}
        return {
            head: {"backend": self.backend, "options": {**self.options, "head": head}} for head in self.heads
        }


def _percentiles(values: list[float], prefix: str) -> dict[str, float | None]:
    if not values:
        return {f"{prefix}_median": None, f"{prefix}_p99": None}
    return {
        f"{prefix}_median": round(float(np.median(values)), 3),
        f"{prefix}_p99": round(float(np.percentile(values, 99)), 3),
    }


def chunk_latency(backend: VLABackend, count: int) -> dict[str, float]:
    """In-process chunk latency, measured by the small VLA's benchmark function (any backend)."""
    from pld_vla_server.small_vla.benchmark import measure_chunk_latency

    result = measure_chunk_latency(backend, count)
    return {
        "chunk_latency_ms_median": round(float(result["median_ms"]), 3),
        "chunk_latency_ms_p99": round(float(result["p99_ms"]), 3),
    }


def _build(variant: dict[str, Any]) -> VLABackend:
    from pld_vla_server.backends import BACKENDS, make_backend

    if "checkpoint" in variant:
        return BACKENDS.lookup(variant["backend"]).load(Path(variant["checkpoint"]))
    return make_backend(variant["backend"], variant["options"])


def run_vla_bench(cfg: VLABenchConfig) -> dict[str, Any]:
    from pld_vla_server.ros.bench_client import run_e2e  # rclpy only here: the module imports without it

    result: dict[str, Any] = {
        "backend": cfg.backend,
        "count": cfg.count,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
    }
    for key, variant in cfg.variants().items():
        backend = _build(variant)
        if "checkpoint" in variant:
            key = getattr(backend.config, "head", key)
        try:
            spec = backend.input_spec
            entry: dict[str, Any] = {"model_id": backend.model_id, **chunk_latency(backend, cfg.count)}
        finally:
            backend.close()
        parameters = {"backend": variant["backend"], "status_period_s": 0.5}
        if "checkpoint" in variant:
            parameters["checkpoint"] = variant["checkpoint"]
        else:
            parameters["backend_options"] = json.dumps(variant["options"])
        e2e = run_e2e(
            parameters, spec, count=cfg.count, seconds=cfg.seconds, startup_timeout_s=cfg.startup_timeout_s
        )
        entry.update(_percentiles(e2e.e2e_ms, "server_e2e_ms"))
        entry.update(_percentiles(e2e.server_inference_ms, "server_inference_ms"))
        status = e2e.status
        entry.update(
            e2e_answered=len(e2e.e2e_ms),
            e2e_lost=e2e.lost,
            server_startup_s=round(e2e.startup_s, 2),
            server_counters={
                name: status.get(name)
                for name in ("received", "processed", "dropped_stale", "rejected_invalid", "failed")
            },
        )
        result[key] = entry
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", default=VLABenchConfig.backend, help="registered VLA backend (default: %(default)s)"
    )
    parser.add_argument(
        "--heads",
        default=",".join(HEADS),
        help="small_vla heads to measure, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--checkpoint", default="", help="measure this checkpoint instead of random init")
    parser.add_argument(
        "--options", default="{}", help="extra backend options as a JSON object (default: %(default)s)"
    )
    parser.add_argument(
        "--count", type=int, default=VLABenchConfig.count, help="observations per head (default: %(default)s)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=VLABenchConfig.seconds,
        help="bound on the DDS round trips of each head, in s (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON document")


def run(args: argparse.Namespace) -> int:
    try:
        options = json.loads(args.options)
        if not isinstance(options, dict):
            raise ValueError("--options must be a JSON object")
        cfg = VLABenchConfig(
            backend=args.backend,
            heads=tuple(h.strip() for h in args.heads.split(",") if h.strip()),
            checkpoint=args.checkpoint,
            options=options,
            count=args.count,
            seconds=args.seconds,
        )
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        print(f"pld bench vla: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        print(f"pld bench vla: {cfg.backend} {list(cfg.variants())}, {cfg.count} chunks each")
    print(json.dumps(run_vla_bench(cfg), indent=2))
    return 0
