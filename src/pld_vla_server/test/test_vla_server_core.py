"""The ROS-free server core: config validation, newest wins, counters, readiness, instruction changes.

The slow backend here is a test fake at the backend interface: `HoldBackend` whose `predict` waits on a
gate (so a test decides exactly when an inference finishes) and records what it was asked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pld_vla_server.backends.hold import HoldBackend, HoldConfig
from pld_vla_server.server import ChunkServer, Outcome, ServedChunk, VLAServerConfig
from pld_vla_server.types import VLAObservation

TIMEOUT = 10.0
GOOD = np.zeros((128, 128, 3), np.uint8)


class GatedHold(HoldBackend):
    """Hold backend whose predictions block until the test opens the gate (or `delay_s` passes)."""

    def __init__(self, config: HoldConfig | None = None, delay_s: float | None = None) -> None:
        super().__init__(config or HoldConfig())
        self.gate = threading.Semaphore(0)
        self.delay_s = delay_s
        self.entered = threading.Event()
        self.seen: list[str] = []

    def predict(self, obs: VLAObservation):
        self.seen.append(obs.instruction)
        self.entered.set()
        if self.delay_s is not None:
            time.sleep(self.delay_s)
        else:
            assert self.gate.acquire(timeout=TIMEOUT), "test never released the backend"
        return super().predict(obs)


def observation(size: int = 128, instruction: str = "") -> VLAObservation:
    image = np.zeros((size, size, 3), np.uint8)
    return VLAObservation({"side": image, "wrist": image.copy()}, np.zeros(15, np.float32), instruction)


def wait_for(condition, timeout_s: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


@pytest.fixture
def served() -> list[ServedChunk]:
    return []


def make_server(backend, served: list[ServedChunk], **cfg) -> ChunkServer:
    cfg.setdefault("instruction", "pick up the blue cube")
    cfg.setdefault("warmup", False)
    return ChunkServer(VLAServerConfig(backend="hold", **cfg), backend, on_chunk=served.append).start()


# ---------------------------------------------------------------------- config


def test_config_round_trips_and_takes_json_options() -> None:
    cfg = VLAServerConfig.from_dict(
        {"backend": "hold", "backend_options": '{"horizon": 4}', "horizon": 3, "status_period_s": 2}
    )
    assert cfg.backend_options == {"horizon": 4} and cfg.status_period_s == 2.0
    assert VLAServerConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.build_backend().config == HoldConfig(horizon=4)
    assert VLAServerConfig.from_dict({"backend": "hold", "backend_options": ""}).backend_options == {}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backend": "nope"}, "known VLA backends"),
        ({"backend": "hold", "backend_options": {"bogus": 1}}, "backend_options"),
        ({"backend": "hold", "backend_options": "{not json"}, "JSON"),
        ({"backend": "hold", "backend_options": {"horizon": 0}}, "backend_options"),
        ({"backend": "hold", "device": "gpu"}, "device"),
        ({"backend": "hold", "device": "cuda:0"}, "CPU only"),
        ({"backend": "hold", "horizon": -1}, "horizon"),
        ({"backend": "hold", "horizon": True}, "horizon"),
        ({"backend": "hold", "warmup": 1}, "warmup"),
        ({"backend": "hold", "status_period_s": 0.0}, "status_period_s"),
        ({"backend": "hold", "worker_nice": 20}, "worker_nice"),
        ({"backend": "hold", "worker_nice": -1}, "worker_nice"),
        ({"backend": "hold", "checkpoint": "/does/not/exist"}, "checkpoint"),
        ({"backend": "hold", "color": "red"}, "unknown option"),
    ],
)
def test_invalid_config_names_the_field(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VLAServerConfig.from_dict(values)


def test_checkpoint_and_options_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either checkpoint or backend_options"):
        VLAServerConfig(backend="hold", checkpoint=str(tmp_path), backend_options={"horizon": 2})


# ---------------------------------------------------------------------- readiness


def test_not_ready_until_loaded_and_observations_meanwhile_are_counted(served) -> None:
    release = threading.Event()

    def slow_load() -> HoldBackend:
        assert release.wait(TIMEOUT)
        return HoldBackend(HoldConfig())

    states: list[dict] = []
    cfg = VLAServerConfig(backend="hold", instruction="go", warmup=True)
    started = time.perf_counter()
    server = ChunkServer(cfg, slow_load, on_chunk=served.append, on_state=states.append).start()
    try:
        assert time.perf_counter() - started < 0.5, "start() must not wait for the backend"
        assert not server.ready and server.status()["state"] == "loading"
        assert server.submit(observation(), 1) is Outcome.NOT_READY
        assert not server.wait_ready(0.05)
        release.set()
        assert server.wait_ready(TIMEOUT)
        assert [s["ready"] for s in states] == [True]
        assert server.submit(observation(), 2) is Outcome.QUEUED
        assert wait_for(lambda: len(served) == 1)
        status = server.status()
        assert (status["received"], status["dropped_not_ready"], status["processed"]) == (2, 1, 1)
        assert status["model_id"] == "hold" and status["input_spec"]["image_size"] == 128
        assert served[0].stamp_ns == 2
    finally:
        server.close()


def test_a_backend_that_fails_to_load_is_reported_not_raised(served) -> None:
    def broken() -> HoldBackend:
        raise OSError("weights file truncated")

    server = ChunkServer(VLAServerConfig(backend="hold"), broken, on_chunk=served.append).start()
    try:
        assert not server.wait_ready(TIMEOUT)
        status = server.status()
        assert status["state"] == "failed" and "weights file truncated" in status["last_error"]
        assert server.submit(observation(instruction="go"), 1) is Outcome.NOT_READY
    finally:
        server.close()


def test_warmup_runs_before_ready(served) -> None:
    backend = GatedHold()
    server = ChunkServer(
        VLAServerConfig(backend="hold", warmup=True), backend, on_chunk=served.append
    ).start()
    try:
        assert backend.entered.wait(TIMEOUT)
        assert not server.ready, "ready before the warm-up prediction finished"
        backend.gate.release()
        assert server.wait_ready(TIMEOUT) and backend.seen == ["warm up"]
        assert server.status()["received"] == 0 and not served  # warm-up is not a served observation
    finally:
        server.close()


def test_worker_nice_lowers_only_the_inference_thread_once_loaded(served) -> None:
    """Served observations run at the lower priority; loading and warm-up do not (at a low priority on a
    busy CPU loading took tens of seconds); the caller's (the node's) thread keeps its priority (Linux
    nicenesses are per thread)."""
    import os

    caller_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    backend = GatedHold()
    worker_nice: list[int] = []
    backend.predict = lambda obs, predict=backend.predict: (
        worker_nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())) or predict(obs)
    )
    server = make_server(backend, served, warmup=True, worker_nice=5)
    try:
        assert backend.entered.wait(TIMEOUT)
        backend.gate.release()
        assert server.wait_ready(TIMEOUT)
        assert server.submit(observation(), 1, "first") is Outcome.QUEUED
        backend.gate.release()
        assert wait_for(lambda: len(served) == 1)
        assert worker_nice == [caller_nice, min(caller_nice + 5, 19)]  # warm-up, then the served one
        assert server.status()["worker_nice"] == worker_nice[1]
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller_nice
    finally:
        server.close()


# ---------------------------------------------------------------------- newest wins


def test_newest_observation_wins_and_submit_never_blocks(served) -> None:
    backend = GatedHold()
    server = make_server(backend, served)
    try:
        assert server.wait_ready(TIMEOUT)
        assert server.submit(observation(), 1, "first") is Outcome.QUEUED
        assert backend.entered.wait(TIMEOUT)  # the worker is now inside predict for stamp 1
        started = time.perf_counter()
        outcomes = [server.submit(observation(), stamp, f"obs{stamp}") for stamp in (2, 3, 4)]
        assert time.perf_counter() - started < 1.0, "submit waited for the backend"
        assert outcomes == [Outcome.QUEUED] * 3
        backend.gate.release()
        backend.gate.release()
        assert wait_for(lambda: len(served) == 2)
        assert [(s.stamp_ns, s.tag) for s in served] == [(1, "first"), (4, "obs4")]
        time.sleep(0.05)
        status = server.status()
        assert (status["received"], status["processed"], status["dropped_stale"]) == (4, 2, 2)
        assert served[1].total_ms >= served[1].inference_ms > 0
        assert served[0].chunk.actions.shape == (10, 7)
    finally:
        backend.gate.release()
        server.close()


def test_a_slow_backend_serves_only_recent_observations(served) -> None:
    backend = GatedHold(delay_s=0.05)
    server = make_server(backend, served)
    try:
        assert server.wait_ready(TIMEOUT)
        started = time.perf_counter()
        for stamp in range(1, 41):  # 200 Hz against a 20 Hz backend
            server.submit(observation(), stamp)
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        assert wait_for(lambda: server.status()["processed"] + server.status()["dropped_stale"] == 40)
        stamps = [s.stamp_ns for s in served]
        assert stamps == sorted(stamps) and stamps[-1] == 40, "the newest observation must be answered"
        # at most one chunk per backend period (+ the one in flight and the last), never a backlog
        assert 2 <= len(stamps) <= elapsed / 0.05 + 2 and len(stamps) < 20, (stamps, elapsed)
    finally:
        server.close()


# ---------------------------------------------------------------------- bad observations


@pytest.mark.parametrize(
    ("obs", "server_instruction", "field"),
    [
        (observation(size=64), "go", "images['side']"),
        (
            replace(observation(), images={"side": np.zeros((128, 128, 3), np.float32), "wrist": GOOD}),
            "go",
            "images['side']: expected uint8",
        ),
        (replace(observation(), images={"side": GOOD, "wrist": None}), "go", "images['wrist']"),
        (replace(observation(), images={"side": GOOD}), "go", "missing camera"),
        (replace(observation(), proprio=np.full(15, np.nan, np.float32)), "go", "proprio"),
        (replace(observation(), proprio=np.zeros(3, np.float32)), "go", "proprio"),
        (observation(), "", "instruction"),
        (observation(), "   ", "instruction"),
    ],
)
def test_invalid_observations_are_counted_with_the_reason_and_dropped(
    served, obs: VLAObservation, server_instruction: str, field: str
) -> None:
    backend = GatedHold(delay_s=0.0)
    server = make_server(backend, served, instruction=server_instruction)
    try:
        assert server.wait_ready(TIMEOUT)
        assert server.submit(obs, 1) is Outcome.REJECTED
        status = server.status()
        assert status["rejected_invalid"] == 1 and field in status["last_reject_reason"]
        server.set_instruction("go")
        assert server.submit(observation(), 2) is Outcome.QUEUED  # still serving
        assert wait_for(lambda: len(served) == 1) and served[0].stamp_ns == 2
        assert backend.seen == ["go"], "an invalid observation reached the backend"
    finally:
        server.close()


def test_observation_instruction_is_used_when_the_server_has_none(served) -> None:
    server = make_server(GatedHold(delay_s=0.0), served, instruction="")
    try:
        assert server.wait_ready(TIMEOUT)
        assert server.submit(observation(instruction="open the drawer"), 1) is Outcome.QUEUED
        assert wait_for(lambda: len(served) == 1) and served[0].instruction == "open the drawer"
    finally:
        server.close()


def test_backend_errors_are_counted_and_the_server_keeps_serving(served) -> None:
    class Flaky(HoldBackend):
        calls = 0

        def predict(self, obs):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("CUDA out of memory")
            return super().predict(obs)

    server = make_server(Flaky(HoldConfig()), served)
    try:
        assert server.wait_ready(TIMEOUT)
        server.submit(observation(), 1)
        assert wait_for(lambda: server.status()["failed"] == 1)
        assert "CUDA out of memory" in server.status()["last_error"]
        server.submit(observation(), 2)
        assert wait_for(lambda: len(served) == 1) and served[0].stamp_ns == 2
    finally:
        server.close()


def test_a_failing_chunk_consumer_does_not_stop_the_server() -> None:
    calls: list[int] = []

    def consumer(chunk: ServedChunk) -> None:
        calls.append(chunk.stamp_ns)
        if len(calls) == 1:
            raise RuntimeError("publisher gone")

    cfg = VLAServerConfig(backend="hold", instruction="go", warmup=False)
    server = ChunkServer(cfg, on_chunk=consumer).start()
    try:
        assert server.wait_ready(TIMEOUT)
        server.submit(observation(), 1)
        assert wait_for(lambda: calls == [1])
        server.submit(observation(), 2)
        assert wait_for(lambda: calls == [1, 2])
        assert "publisher gone" in server.status()["last_error"]
    finally:
        server.close()


# ---------------------------------------------------------------------- horizon, instruction


def test_horizon_trims_chunks_and_a_too_short_chunk_is_an_error(served) -> None:
    server = make_server(None, served, horizon=4, backend_options={"horizon": 10})
    short = make_server(None, served, horizon=12)
    try:
        assert server.wait_ready(TIMEOUT) and short.wait_ready(TIMEOUT)
        server.submit(observation(), 1)
        assert wait_for(lambda: len(served) == 1) and served[0].chunk.actions.shape == (4, 7)
        short.submit(observation(), 2)
        assert wait_for(lambda: short.status()["failed"] == 1)
        assert "horizon is 12" in short.status()["last_error"] and len(served) == 1
    finally:
        server.close()
        short.close()


def test_instruction_change_during_inference_applies_to_the_next_chunk(served) -> None:
    backend = GatedHold()
    server = make_server(backend, served, instruction="pick up the cube")
    try:
        assert server.wait_ready(TIMEOUT)
        server.submit(observation(), 7)
        assert backend.entered.wait(TIMEOUT)
        server.set_instruction("put the cube in the bowl")
        backend.gate.release()  # the chunk for the old instruction is thrown away ...
        backend.gate.release()  # ... and the same observation is answered with the new one
        assert wait_for(lambda: len(served) == 1)
        assert served[0].stamp_ns == 7 and served[0].instruction == "put the cube in the bowl"
        assert backend.seen == ["pick up the cube", "put the cube in the bowl"]
        assert server.status()["reruns_instruction_changed"] == 1
        assert server.status()["instruction"] == "put the cube in the bowl"

        # when a newer observation is already waiting, that one is answered instead of a rerun
        backend.entered.clear()
        server.submit(observation(), 8)
        assert backend.entered.wait(TIMEOUT)
        server.set_instruction("open the drawer")
        server.submit(observation(), 9)
        backend.gate.release()
        backend.gate.release()
        assert wait_for(lambda: len(served) == 2)
        assert (served[1].stamp_ns, served[1].instruction) == (9, "open the drawer")
        time.sleep(0.05)
        assert len(served) == 2 and server.status()["reruns_instruction_changed"] == 2
    finally:
        backend.gate.release()
        server.close()


def test_close_stops_the_worker_and_later_submits_are_not_served(served) -> None:
    server = make_server(None, served)
    assert server.wait_ready(TIMEOUT)
    server.close()
    assert not server._thread.is_alive()
    assert server.submit(observation(), 1) is Outcome.NOT_READY
    assert server.status()["state"] == "closed" and not served
