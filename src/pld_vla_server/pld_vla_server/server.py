"""The VLA server core, free of ROS: one backend, the newest observation, a worker thread.

The control loop must never wait for the VLA (design.md §4), so `ChunkServer.submit` only validates and
stores the observation and returns at once; a worker thread runs the backend on the newest observation
and hands each chunk to a callback. An observation that is still waiting when a newer one arrives is
dropped (newest wins): a chunk for an old observation is worth less than one for the current state.

The backend loads (and warms up) on that same thread, so a node using this core comes up at once and
reports "not ready" until the first prediction would be fast. Bad observations never raise out of
`submit`: they are counted, the reason is kept for the status, and the observation is dropped.

The instruction is server state (a latched topic in the node): it replaces the instruction of every
observation at inference time, so a change mid-episode applies to the very next chunk. A chunk that was
being computed with the old instruction when it changed is not delivered; its observation runs again
with the new instruction unless a newer one is already waiting.
"""

from __future__ import annotations

import enum
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pld_vla_server.backends import BACKENDS, VLABackend, make_backend
from pld_vla_server.types import ActionChunk, InputSpec, VLAObservation, validate_observation

_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class VLAServerConfig:
    """Options of the VLA server; each field is one ROS parameter of `vla_server_node`."""

    backend: str = field(default="small_vla", metadata=_help("registered VLA backend name"))
    backend_options: dict[str, Any] = field(
        default_factory=dict,
        metadata=_help("backend config as a dict (a JSON object string as a ROS parameter)"),
    )
    checkpoint: str = field(
        default="", metadata=_help("checkpoint path loaded by the backend; '' = build from backend_options")
    )
    device: str = field(
        default="cpu", metadata=_help("torch-style device for backends that have a 'device' option")
    )
    horizon: int = field(
        default=0, metadata=_help("actions per published chunk (trims the backend's); 0 = backend's own")
    )
    instruction: str = field(
        default="", metadata=_help("instruction used until one arrives on the 'instruction' topic")
    )
    warmup: bool = field(default=True, metadata=_help("run one prediction before reporting ready"))
    every_n_steps: int = field(
        default=1,
        metadata=_help(
            "answer an observation only when the last answered one of its episode is this many steps "
            "back (lockstep graphs: a chunk serves that many steps, as `pld learn`'s execute_steps; a "
            "missed observation is made up by the next); 1 = every observation"
        ),
    )
    worker_nice: int = field(
        default=0,
        metadata=_help(
            "raise the niceness of the inference thread by this much once the backend is loaded (0-19, "
            "Linux: per thread), so the control path (driver, residual actor) gets the CPU first; its "
            "chunk is used a step later"
        ),
    )
    status_period_s: float = field(default=1.0, metadata=_help("period of the vla_status topic (s)"))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = dict if f.name == "backend_options" else type(f.default)
            if expected is float:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            else:
                ok = isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
            if not ok:
                raise ValueError(f"VLAServerConfig.{f.name}: must be a {expected.__name__}, got {value!r}")
        cls = BACKENDS.lookup(self.backend)  # unknown names fail here, listing the known ones
        if not _DEVICE.fullmatch(self.device):
            raise ValueError(
                f"VLAServerConfig.device: expected cpu, cuda, cuda:<n> or mps, got {self.device!r}"
            )
        if self.device != "cpu" and "device" not in _option_names(cls.config_type):
            raise ValueError(f"VLAServerConfig.device: backend {self.backend!r} runs on the CPU only")
        if self.horizon < 0:
            raise ValueError(f"VLAServerConfig.horizon: must be >= 0, got {self.horizon}")
        if self.every_n_steps < 1:
            raise ValueError(f"VLAServerConfig.every_n_steps: must be >= 1, got {self.every_n_steps}")
        if self.status_period_s <= 0:
            raise ValueError(f"VLAServerConfig.status_period_s: must be positive, got {self.status_period_s}")
        if not 0 <= self.worker_nice <= 19:
            raise ValueError(f"VLAServerConfig.worker_nice: must be in 0..19, got {self.worker_nice}")
        if self.checkpoint:
            if self.backend_options:
                raise ValueError(
                    "VLAServerConfig: give either checkpoint or backend_options (a checkpoint carries its "
                    "own config)"
                )
            if not Path(self.checkpoint).exists():
                raise ValueError(f"VLAServerConfig.checkpoint: {self.checkpoint!r} does not exist")
        else:
            try:  # a typo in an option fails at configuration time, not later on the loading thread
                cls.config_type.from_dict(self.backend_config())
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"VLAServerConfig.backend_options: invalid for {self.backend!r}: {exc}"
                ) from None

    def backend_config(self) -> dict[str, Any]:
        """The backend's options, plus `device` for backends that have that option."""
        options = dict(self.backend_options)
        if "device" in _option_names(BACKENDS.lookup(self.backend).config_type):
            options.setdefault("device", self.device)
        return options

    def build_backend(self) -> VLABackend:
        """Load the checkpoint or build the backend from its options (may take seconds: call off-thread)."""
        if self.checkpoint:
            return BACKENDS.lookup(self.backend).load(Path(self.checkpoint))
        return make_backend(self.backend, self.backend_config())

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> VLAServerConfig:
        """From YAML / ROS parameter values: backend_options may be a JSON object string."""
        values = dict(values)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"VLAServerConfig: unknown option(s) {unknown}")
        options = values.get("backend_options")
        if isinstance(options, str):
            try:
                values["backend_options"] = json.loads(options) if options.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"VLAServerConfig.backend_options: not a JSON object: {exc}") from None
        period = values.get("status_period_s")
        if isinstance(period, int) and not isinstance(period, bool):
            values["status_period_s"] = float(period)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lower_thread_priority(increment: int) -> int | None:
    """Raise the calling thread's niceness by `increment`; its new niceness, or None where the OS refuses.

    On Linux a niceness belongs to a thread (its native id), not to the whole process, so only this
    thread yields; elsewhere, or without permission, nothing changes.
    """
    try:
        tid = threading.get_native_id()
        niceness = min(os.getpriority(os.PRIO_PROCESS, tid) + increment, 19)
        os.setpriority(os.PRIO_PROCESS, tid, niceness)
        return os.getpriority(os.PRIO_PROCESS, tid)
    except (AttributeError, OSError):
        return None


def _option_names(config_type: type) -> set[str]:
    return {f.name for f in fields(config_type)} if is_dataclass(config_type) else set()


class Outcome(enum.Enum):
    """What `submit` did with an observation."""

    QUEUED = "queued"
    NOT_READY = "not_ready"
    REJECTED = "rejected"


@dataclass
class ServerStats:
    """Counters of the server; every received observation ends in exactly one of the outcome counters."""

    received: int = 0
    processed: int = 0  # a chunk was delivered for it
    dropped_stale: int = 0  # replaced by a newer observation before inference started
    rejected_invalid: int = 0  # failed validation (conversion, input spec, instruction)
    dropped_not_ready: int = 0  # arrived while the backend was loading
    failed: int = 0  # the backend raised something other than a ValueError
    reruns_instruction_changed: int = 0  # chunks discarded because the instruction changed meanwhile
    last_reject_reason: str = ""
    last_error: str = ""
    last_inference_ms: float = 0.0
    worker_nice: int | None = None  # niceness of the inference thread once lowered; None = left alone


@dataclass(frozen=True)
class ServedChunk:
    """A chunk with what it answers: the observation's stamp and opaque tag, and the instruction used."""

    chunk: ActionChunk
    stamp_ns: int
    tag: Any
    instruction: str
    inference_ms: float  # wall time of the backend's predict call
    total_ms: float  # submit -> chunk ready (queueing + inference)


@dataclass
class _Pending:
    obs: VLAObservation
    stamp_ns: int
    tag: Any
    submitted: float  # perf_counter


BackendSource = VLABackend | Callable[[], VLABackend] | None


class ChunkServer:
    """Owns one backend and answers the newest observation with an action chunk, off the caller's thread.

    `backend` is an instance, a zero-argument factory, or None (built from `cfg`). Callbacks run on the
    worker thread: `on_chunk(ServedChunk)` for each chunk, `on_state(status)` when readiness changes.
    """

    def __init__(
        self,
        cfg: VLAServerConfig,
        backend: BackendSource = None,
        *,
        on_chunk: Callable[[ServedChunk], None] | None = None,
        on_state: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._source = backend
        self._on_chunk = on_chunk
        self._on_state = on_state
        self._cond = threading.Condition()
        self._stats = ServerStats()
        self._state = "created"  # created -> loading -> ready | failed; closed
        self._instruction = cfg.instruction
        self._pending: _Pending | None = None
        self._backend: VLABackend | None = None
        self._spec: InputSpec | None = None
        self._model_id = ""
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="vla-chunk-server", daemon=True)

    # ------------------------------------------------------------------ caller side (never blocks)

    def start(self) -> ChunkServer:
        """Start loading the backend and serving, in the background."""
        with self._cond:
            self._state = "loading"
        self._thread.start()
        return self

    @property
    def ready(self) -> bool:
        return self._state == "ready"

    @property
    def instruction(self) -> str:
        return self._instruction

    def set_instruction(self, instruction: str) -> None:
        """The instruction for every chunk computed from now on (see the module docstring)."""
        with self._cond:
            self._instruction = instruction

    def submit(self, obs: VLAObservation, stamp_ns: int = 0, tag: Any = None) -> Outcome:
        """Offer an observation; it replaces any observation still waiting. Never raises on bad input."""
        with self._cond:
            self._stats.received += 1
            if self._state != "ready":
                self._stats.dropped_not_ready += 1
                return Outcome.NOT_READY
            spec, instruction = self._spec, self._instruction
        try:
            validate_observation(replace(obs, instruction=instruction or obs.instruction), spec)
        except ValueError as exc:
            self._count_rejected(str(exc))
            return Outcome.REJECTED
        with self._cond:
            if self._pending is not None:
                self._stats.dropped_stale += 1
            self._pending = _Pending(obs, int(stamp_ns), tag, time.perf_counter())
            self._cond.notify_all()
        return Outcome.QUEUED

    def reject(self, reason: str) -> None:
        """Count an observation the caller could not even convert (e.g. a malformed message)."""
        with self._cond:
            self._stats.received += 1
        self._count_rejected(reason)

    def _count_rejected(self, reason: str) -> None:
        with self._cond:
            self._stats.rejected_invalid += 1
            self._stats.last_reject_reason = reason

    def status(self) -> dict[str, Any]:
        """JSON-ready snapshot: state, backend, model id, input spec, counters, last error."""
        with self._cond:
            spec = self._spec
            return {
                "ready": self._state == "ready",
                "state": self._state,
                "backend": self.cfg.backend,
                "model_id": self._model_id,
                "device": self.cfg.device,
                "instruction": self._instruction,
                "input_spec": None if spec is None else {**asdict(spec), "cameras": list(spec.cameras)},
                "waiting": self._pending is not None,
                **asdict(self._stats),
            }

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """Block until loaded (True) or failed / timed out (False). For scripts and tests, not callbacks."""
        with self._cond:
            self._cond.wait_for(lambda: self._state != "loading", timeout_s)
            return self._state == "ready"

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the worker (after its current prediction) and release the backend."""
        with self._cond:
            self._stop = True
            self._pending = None
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        with self._cond:
            self._state = "closed"
            backend, self._backend = self._backend, None
        if backend is not None and not self._thread.is_alive():
            backend.close()

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        if not self._load():
            return
        # Only once loaded and warm: at a low priority on a busy CPU, loading (imports, weights) took
        # tens of seconds, and a node stopped meanwhile waited for it.
        if self.cfg.worker_nice:
            self._stats.worker_nice = lower_thread_priority(self.cfg.worker_nice)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stop)
                if self._stop:
                    return
                pending, self._pending = self._pending, None
                instruction = self._instruction or pending.obs.instruction
            self._serve(pending, instruction)

    def _load(self) -> bool:
        try:
            source = self._source
            backend = source if isinstance(source, VLABackend) else (source or self.cfg.build_backend)()
            spec = backend.input_spec
            model_id = backend.model_id  # may hash the weights: once, here, not under the lock
            if self.cfg.warmup:  # first predictions of torch / jit models are slow: pay that before "ready"
                backend.predict(warmup_observation(spec, self._instruction or "warm up"))
        except Exception as exc:  # whatever the backend raises: report it, the process stays up
            with self._cond:
                self._state = "failed"
                self._stats.last_error = f"loading backend {self.cfg.backend!r} failed: {exc!r}"
                self._cond.notify_all()
            self._notify_state()
            return False
        with self._cond:
            self._backend, self._spec, self._model_id = backend, spec, model_id
            if self._stop:  # closed while loading
                return False
            self._state = "ready"
            self._cond.notify_all()
        self._notify_state()
        return True

    def _serve(self, pending: _Pending, instruction: str) -> None:
        started = time.perf_counter()
        try:
            chunk = self._backend.predict(replace(pending.obs, instruction=instruction))
            chunk = self._fit_horizon(chunk)
        except ValueError as exc:  # the backend's own validation: a bad observation, not a broken server
            self._count_rejected(str(exc))
            return
        except Exception as exc:
            with self._cond:
                self._stats.failed += 1
                self._stats.last_error = f"predict failed: {exc!r}"
            return
        done = time.perf_counter()
        with self._cond:
            if self._stop:  # closed meanwhile: nobody may publish this any more
                return
            if (self._instruction or pending.obs.instruction) != instruction:
                self._stats.reruns_instruction_changed += 1
                if self._pending is None and not self._stop:
                    self._pending = pending  # still the newest observation: answer it with the new text
                return
            self._stats.processed += 1
            self._stats.last_inference_ms = (done - started) * 1e3
        served = ServedChunk(
            chunk, pending.stamp_ns, pending.tag, instruction, (done - started) * 1e3,
            (done - pending.submitted) * 1e3,
        )  # fmt: skip
        if self._on_chunk is not None:
            try:
                self._on_chunk(served)
            except Exception as exc:  # a failing consumer must not stop the server
                with self._cond:
                    self._stats.last_error = f"on_chunk callback failed: {exc!r}"

    def _fit_horizon(self, chunk: ActionChunk) -> ActionChunk:
        horizon = self.cfg.horizon
        if not horizon or chunk.horizon == horizon:
            return chunk
        if chunk.horizon < horizon:
            raise RuntimeError(f"backend returned {chunk.horizon} actions, server horizon is {horizon}")
        return replace(chunk, actions=chunk.actions[:horizon])

    def _notify_state(self) -> None:
        if self._on_state is not None:
            try:
                self._on_state(self.status())
            except Exception as exc:
                with self._cond:
                    self._stats.last_error = f"on_state callback failed: {exc!r}"


def warmup_observation(spec: InputSpec, instruction: str) -> VLAObservation:
    """A valid observation for warm-up: grey images, zero proprioception."""
    image = np.full((spec.image_size, spec.image_size, 3), 127, dtype=np.uint8)
    return VLAObservation(
        images={name: image for name in spec.cameras},
        proprio=np.zeros(spec.proprio_dim, dtype=np.float32),
        instruction=instruction,
    )
