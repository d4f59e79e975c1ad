"""The `openpi` backend: msgpack-numpy codec, config, observation/action mapping, and the client against a
protocol-conformant policy server in its own process (`openpi_test_server.py`) on a loopback port.

Failure cases are timed: a dead, stopped or refusing server must give a clear error within the
configured budget, and the backend must work again once the server is back.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest

from pld_vla_server.backends import BACKENDS, make_backend
from pld_vla_server.backends.openpi import (
    OpenPIBackend,
    OpenPIConfig,
    OpenPIConnectionError,
    OpenPIServerError,
    OpenPITimeoutError,
    observation_to_request,
    packb,
    response_to_chunk,
    unpackb,
)
from pld_vla_server.types import VLAObservation

SERVER_SCRIPT = Path(__file__).with_name("openpi_test_server.py")
SLACK_S = 1.5  # scheduling slack on 2 shared cores

# fast-failing settings for tests; worst_case_s = 3 * (0.5 + 1.0 + 0.5) + 0.1 + 0.2 = 6.3 s
FAST = {"connect_timeout_s": 0.5, "request_timeout_s": 1.0, "max_retries": 2, "backoff_s": 0.1}


def make_obs(
    size: int = 128, state: np.ndarray | None = None, instruction: str = "pick up the cube"
) -> VLAObservation:
    rng = np.random.default_rng(size)
    images = {name: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for name in ("side", "wrist")}
    proprio = np.linspace(-1.0, 2.0, 15, dtype=np.float32) if state is None else state
    return VLAObservation(images, proprio, instruction)


def expected_actions(state: np.ndarray, rows: int, cols: list[int]) -> np.ndarray:
    """The test server's deterministic answer, for the given rows and server columns."""
    mean = float(np.asarray(state, dtype=np.float32).mean())
    return (mean + np.arange(rows)[:, None] * 0.01 + np.asarray(cols)[None, :] * 0.001).astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# server processes (started and stopped by handle)
# ----------------------------------------------------------------------------------------------------


class PolicyServer:
    """One `openpi_test_server.py` subprocess on loopback."""

    def __init__(self, port: int = 0, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--port", str(port), "--max-lifetime-s", "120", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = self._wait_listening(timeout=20.0)

    def _wait_listening(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("LISTENING 127.0.0.1:"):
            self.kill()
            raise RuntimeError(f"test server did not start (got {line!r}, exit code {self.proc.poll()})")
        return int(line.rsplit(":", 1)[1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def servers() -> Iterator[list[PolicyServer]]:
    """Start servers with `start(...)` appended to this list; all are killed at teardown."""
    started: list[PolicyServer] = []
    yield started
    for server in started:
        server.kill()


def start(servers: list[PolicyServer], port: int = 0, *args: str) -> PolicyServer:
    server = PolicyServer(port, *args)
    servers.append(server)
    return server


@pytest.fixture
def backends() -> Iterator[list[OpenPIBackend]]:
    made: list[OpenPIBackend] = []
    yield made
    for backend in made:
        backend.close()


def backend_for(backends: list[OpenPIBackend], port: int, **overrides) -> OpenPIBackend:
    backend = make_backend("openpi", {"port": port, **FAST, **overrides})
    assert isinstance(backend, OpenPIBackend)
    backends.append(backend)
    return backend


@contextlib.contextmanager
def silent_listener() -> Iterator[socket.socket]:
    """A loopback TCP port that completes TCP handshakes (kernel backlog) but never speaks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock
    finally:
        sock.close()


# ----------------------------------------------------------------------------------------------------
# codec
# ----------------------------------------------------------------------------------------------------

CODEC_CASES = {
    "uint8 image": np.arange(224 * 224 * 3, dtype=np.int64).reshape(224, 224, 3).astype(np.uint8),
    "float32 chunk": np.linspace(-1, 1, 80, dtype=np.float32).reshape(10, 8),
    "float64 vector": np.array([np.pi, -0.0, 1e300, np.inf]),
    "int64 0-d": np.array(-42, dtype=np.int64),
    "bool mask": np.array([[True, False], [False, True]]),
    "empty float32": np.zeros((0, 7), dtype=np.float32),
    "big-endian float32": np.arange(6, dtype=">f4").reshape(2, 3),
    "non-contiguous": np.arange(24, dtype=np.int16).reshape(4, 6)[:, ::2].T,
    "float16": np.array([0.5, 65504.0], dtype=np.float16),
}


@pytest.mark.parametrize("name", list(CODEC_CASES))
def test_arrays_round_trip_with_dtype_shape_and_values(name: str) -> None:
    array = CODEC_CASES[name]
    decoded = unpackb(packb({"x": array, "nested": {"list": [array, 1, "s"]}}))
    for out in (decoded["x"], decoded["nested"]["list"][0]):
        assert isinstance(out, np.ndarray)
        assert out.dtype == array.dtype and out.shape == array.shape
        np.testing.assert_array_equal(out, array)
        assert out.flags.writeable
    assert decoded["nested"]["list"][1:] == [1, "s"]


@pytest.mark.parametrize(
    "scalar", [np.float32(1.25), np.float16(-0.5), np.int64(-(2**40)), np.uint8(255), np.bool_(True)]
)
def test_numpy_scalars_round_trip_as_numpy_scalars(scalar: np.generic) -> None:
    out = unpackb(packb({"s": scalar}))["s"]
    assert type(out) is type(scalar) and out.dtype == scalar.dtype and out == scalar


def test_float64_scalars_travel_as_plain_floats() -> None:
    """np.float64 subclasses float, so msgpack (here as in openpi) sends it as a msgpack float."""
    out = unpackb(packb({"s": np.float64(-2.5e-300)}))["s"]
    assert type(out) is float and out == -2.5e-300


def test_wire_format_is_openpis_bytes_tagged_maps() -> None:
    """openpi's decoder only recognises bytes keys b"__ndarray__"/b"data"/b"dtype"/b"shape"."""
    raw = msgpack.unpackb(
        packb({"a": np.ones((2, 3), np.float32), "s": np.int64(7)}), raw=False, strict_map_key=False
    )
    assert raw["a"] == {
        b"__ndarray__": True,
        b"data": np.ones((2, 3), np.float32).tobytes(),
        b"dtype": "<f4",
        b"shape": [2, 3],
    }
    assert raw["s"] == {b"__npgeneric__": True, b"data": 7, b"dtype": "<i8"}


def test_decoder_accepts_str_tagged_maps_too() -> None:
    frame = msgpack.packb({"a": {"__ndarray__": True, "data": b"\x01\x02", "dtype": "|u1", "shape": [2]}})
    np.testing.assert_array_equal(unpackb(frame)["a"], np.array([1, 2], np.uint8))


def test_codec_refuses_corrupt_frames_and_unsendable_dtypes() -> None:
    short = msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 7, b"dtype": "<f4", b"shape": [2]})
    with pytest.raises(ValueError, match="needs 8 bytes, got 7"):
        unpackb(short)
    with pytest.raises(TypeError, match="object"):
        packb(np.array([{}, None], dtype=object))


# ----------------------------------------------------------------------------------------------------
# config and pure mapping
# ----------------------------------------------------------------------------------------------------


def test_config_defaults_round_trip_and_registry() -> None:
    cfg = OpenPIConfig()
    assert (cfg.host, cfg.port, cfg.uri) == ("127.0.0.1", 8000, "ws://127.0.0.1:8000")
    assert cfg.image_keys == {"side": "observation/image", "wrist": "observation/wrist_image"}
    assert (cfg.proprio_key, cfg.prompt_key, cfg.resize_to) == ("observation/state", "prompt", 224)
    assert cfg.action_columns == tuple(range(7))
    assert cfg.backoff_delays() == [0.5, 1.0, 2.0]
    assert cfg.worst_case_s == pytest.approx(4 * (5.0 + 30.0 + 1.0) + 3.5)
    assert OpenPIConfig.from_dict(cfg.to_dict()) == cfg
    assert "s3cret" not in repr(OpenPIConfig(api_key="s3cret"))
    assert BACKENDS.lookup("openpi") is OpenPIBackend
    # lazily connected: building it does no network I/O even with nothing listening
    backend = make_backend("openpi", {"port": 1})
    assert backend.server_metadata is None and not backend.ready


def test_config_accepts_ros_style_lists() -> None:
    cfg = OpenPIConfig.from_dict(
        {
            "image_keys": ["cam_high=images/cam_high", "cam_wrist=images/cam_wrist"],
            "proprio_slices": ["observation/joint_position=0:7", "observation/gripper_position=7:8"],
            "action_columns": [7, 6, 5, 4, 3, 2, 1],
        }
    )
    assert cfg.image_keys == {"cam_high": "images/cam_high", "cam_wrist": "images/cam_wrist"}
    assert cfg.proprio_slices == {
        "observation/joint_position": [0, 7],
        "observation/gripper_position": [7, 8],
    }
    assert cfg.action_columns == (7, 6, 5, 4, 3, 2, 1)
    assert OpenPIConfig.from_dict(cfg.to_dict()) == cfg
    # JSON / YAML numbers: integral floats for ints, ints for floats
    cfg = OpenPIConfig.from_dict({"port": 8001.0, "connect_timeout_s": 2, "horizon": 5.0})
    assert (type(cfg.port), cfg.port, type(cfg.connect_timeout_s), cfg.horizon) == (int, 8001, float, 5)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"port": 0}, "port"),
        ({"request_timeout_s": 0.0}, "request_timeout_s"),
        ({"connect_timeout_s": float("inf")}, "connect_timeout_s"),
        ({"max_retries": 50}, "max_retries"),
        ({"backoff_s": 5.0, "backoff_max_s": 1.0}, "backoff_s"),
        ({"action_columns": [0, 1, 2]}, "action_columns"),
        ({"action_columns": [0, 1, 2, 3, 4, 5, 6.5]}, "action_columns"),
        ({"action_scale": [1.0] * 6 + [float("nan")]}, "action_scale"),
        ({"horizon": -1}, "horizon"),
        ({"image_keys": {}}, "image_keys"),
        ({"proprio_slices": {"a": [3, 2]}}, "proprio_slices"),
        ({"prompt_key": "observation/image"}, "clash"),
        ({"nested_keys": True, "proprio_key": "observation"}, "clash"),
        ({"resize_to": 4}, "resize_to"),
        ({"state_dtype": "int8"}, "state_dtype"),
        ({"hots": "x"}, "unknown field"),
        ({"port": "8000"}, "port: must be int"),
        ({"port": 8000.5}, "port"),
        ({"nested_keys": 1}, "nested_keys"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(values: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        OpenPIConfig.from_dict(values)


def test_observation_to_request_flat_libero_style() -> None:
    obs = make_obs()
    request = observation_to_request(obs, OpenPIConfig())
    assert set(request) == {"observation/image", "observation/wrist_image", "observation/state", "prompt"}
    for key in ("observation/image", "observation/wrist_image"):
        assert request[key].dtype == np.uint8 and request[key].shape == (224, 224, 3)
    # bilinear upsampling keeps a constant image constant and the mean close
    assert abs(float(request["observation/image"].mean()) - float(obs.images["side"].mean())) < 2.0
    assert request["observation/state"].dtype == np.float32
    np.testing.assert_array_equal(request["observation/state"], obs.proprio)
    assert request["prompt"] == "pick up the cube"


def test_observation_to_request_nested_and_split_state() -> None:
    cfg = OpenPIConfig(
        image_keys={"side": "images/cam_high", "wrist": "images/cam_wrist"},
        proprio_slices={"state/joints": [0, 7], "state/gripper": [7, 8]},
        nested_keys=True,
        resize_to=0,
        state_dtype="float64",
    )
    obs = make_obs()
    request = observation_to_request(obs, cfg)
    assert set(request) == {"images", "state", "prompt"}
    assert request["images"]["cam_high"] is obs.images["side"]  # resize_to=0: sent as is
    assert request["state"]["joints"].dtype == np.float64
    np.testing.assert_array_equal(request["state"]["gripper"], obs.proprio[7:8])


def test_response_to_chunk_picks_scales_and_cuts() -> None:
    server = np.arange(50 * 8, dtype=np.float32).reshape(50, 8)
    cfg = OpenPIConfig(
        action_columns=(1, 2, 3, 4, 5, 6, 7),
        action_scale=(2.0,) * 7,
        action_offset=(0, 0, 0, 0, 0, 0, -1.0),
        horizon=5,
        features_key="feat",
    )
    chunk = response_to_chunk(
        {"actions": server, "feat": np.ones((2, 3)), "server_timing": {"infer_ms": 3.0}}, cfg
    )
    assert chunk.actions.shape == (5, 7) and chunk.actions.dtype == np.float32
    expected = server[:5, 1:8] * 2.0
    expected[:, 6] -= 1.0
    np.testing.assert_allclose(chunk.actions, expected)
    assert chunk.features is not None and chunk.features.shape == (6,)
    assert chunk.extras["server_timing"] == {"infer_ms": 3.0}
    assert chunk.extras["server_action_shape"] == [50, 8]
    assert response_to_chunk({"actions": server}, OpenPIConfig(horizon=0)).horizon == 50
    assert response_to_chunk({"actions": server[:3]}, OpenPIConfig(horizon=10)).horizon == 3


@pytest.mark.parametrize(
    ("response", "match"),
    [
        ({"action": np.zeros((10, 8))}, "no 'actions'"),
        ({"actions": np.zeros((10, 6))}, "has 6 columns"),
        ({"actions": np.zeros((0, 8))}, "must be"),
        ({"actions": np.full((2, 8), np.nan)}, "NaN"),
        ({"actions": "oops"}, "non-numeric"),
    ],
)
def test_response_to_chunk_rejects_unusable_responses(response: dict, match: str) -> None:
    with pytest.raises(OpenPIServerError, match=match):
        response_to_chunk(response, OpenPIConfig())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o.images.__setitem__("wrist", np.zeros((64, 64, 3), np.uint8)), r"images\['wrist'\]"),
        (lambda o: o.images.pop("side"), "images: missing camera"),
        (lambda o: setattr(o, "instruction", "  "), "instruction"),
        (lambda o: setattr(o, "proprio", np.zeros(3, np.float32)), "proprio"),
    ],
)
def test_bad_input_is_refused_before_any_network_traffic(mutate, field: str) -> None:
    with silent_listener() as listener:
        port = listener.getsockname()[1]
        backend = OpenPIBackend(OpenPIConfig(port=port, **FAST))
        obs = make_obs()
        mutate(obs)
        with pytest.raises(ValueError, match=field):
            backend.predict(obs)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
        assert backend.requests == 0


# ----------------------------------------------------------------------------------------------------
# against the test server
# ----------------------------------------------------------------------------------------------------


def test_end_to_end_chunk_metadata_and_intact_arrays(servers, backends) -> None:
    server = start(servers)
    backend = backend_for(backends, server.port, features_key="features")
    assert not backend.ready
    health = backend.health()
    assert health["ok"] and backend.ready
    assert backend.server_metadata == {"policy": "openpi_test_server", "action_horizon": 10, "action_dim": 8}

    obs = make_obs()
    chunk = backend.predict(obs)
    assert chunk.actions.dtype == np.float32 and chunk.actions.shape == (10, 7)
    np.testing.assert_allclose(chunk.actions, expected_actions(obs.proprio, 10, list(range(7))), atol=1e-6)
    assert chunk.extras["server_action_shape"] == [10, 8]
    assert chunk.inference_ms > 0 and chunk.model_id == f"openpi@127.0.0.1:{server.port}"
    assert "infer_ms" in chunk.extras["server_timing"]

    # what the server decoded: dtypes, shapes and bytes intact on the way there
    sent = observation_to_request(obs, backend.config)
    received = chunk.extras["received"]
    assert set(received) == set(sent)
    for key in ("observation/image", "observation/wrist_image"):
        assert received[key] == {
            "dtype": "|u1",
            "shape": [224, 224, 3],
            "sum": float(sent[key].sum(dtype=np.float64)),
        }
    assert received["observation/state"]["dtype"] == "<f4" and received["observation/state"]["shape"] == [15]
    assert received["prompt"] == {"type": "str", "value": "pick up the cube"}
    # and on the way back: arrays and numpy scalars keep their dtypes
    assert chunk.extras["state_echo"].dtype == np.float32
    np.testing.assert_array_equal(chunk.extras["state_echo"], obs.proprio)
    assert type(chunk.extras["mean"]) is np.float32 and type(chunk.extras["step"]) is np.int64
    assert chunk.extras["mean"] == np.float32(obs.proprio.mean())
    assert chunk.features is not None and chunk.features.shape == (4,)


def test_end_to_end_action_mapping_and_nested_keys(servers, backends) -> None:
    server = start(servers, 0, "--horizon", "50")
    backend = backend_for(
        backends,
        server.port,
        nested_keys=True,
        action_columns=[1, 2, 3, 4, 5, 6, 7],
        action_scale=[10.0] * 7,
        action_offset=[0, 0, 0, 0, 0, 0, 1.0],
        horizon=8,
    )
    obs = make_obs(state=np.full(15, 0.25, np.float32))
    chunk = backend.predict(obs)
    expected = expected_actions(obs.proprio, 8, list(range(1, 8))) * 10.0
    expected[:, 6] += 1.0
    np.testing.assert_allclose(chunk.actions, expected, rtol=1e-6)
    assert set(chunk.extras["received"]) == {
        "observation/image",
        "observation/wrist_image",
        "observation/state",
        "prompt",
    }


def test_server_killed_gives_clear_error_in_time_and_restart_recovers(servers, backends) -> None:
    server = start(servers)
    backend = backend_for(backends, server.port)
    obs = make_obs()
    backend.predict(obs)
    port = server.port
    server.kill()

    begin = time.monotonic()
    with pytest.raises(OpenPIConnectionError) as info:
        backend.predict(obs)
    elapsed = time.monotonic() - begin
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "unreachable after 3 attempt(s)" in message
    assert "ConnectionRefusedError" in message and "Check that the server is running" in message
    assert isinstance(info.value, ConnectionError)
    # refused connections fail at once: only the backoff sleeps (0.1 + 0.2 s) count
    assert elapsed < sum(backend.config.backoff_delays()) + SLACK_S
    assert not backend.ready and not backend.health()["ok"]
    assert backend.failures == 1

    start(servers, port)  # same port
    chunk = backend.predict(obs)
    np.testing.assert_allclose(chunk.actions, expected_actions(obs.proprio, 10, list(range(7))), atol=1e-6)
    assert backend.ready and backend.health()["ok"]


def test_server_killed_during_a_request(servers, backends) -> None:
    server = start(servers, 0, "--delay-s", "5")
    backend = backend_for(backends, server.port, request_timeout_s=10.0)
    backend.connect()
    threading.Timer(0.5, server.kill).start()
    begin = time.monotonic()
    with pytest.raises(OpenPIConnectionError, match="unreachable") as info:
        backend.predict(make_obs())
    assert not isinstance(info.value, OpenPITimeoutError)
    assert time.monotonic() - begin < 0.5 + sum(backend.config.backoff_delays()) + SLACK_S


def test_stopped_server_times_out_without_hanging(servers, backends) -> None:
    """SIGSTOP: the kernel still accepts bytes and connections but nobody answers."""
    server = start(servers)
    backend = backend_for(backends, server.port)
    obs = make_obs()
    backend.predict(obs)
    server.proc.send_signal(signal.SIGSTOP)
    try:
        begin = time.monotonic()
        with pytest.raises(OpenPITimeoutError, match="request_timeout_s=1"):
            backend.predict(obs)  # request timeouts are not retried
        assert time.monotonic() - begin < backend.config.request_timeout_s + SLACK_S

        begin = time.monotonic()
        with pytest.raises(OpenPIConnectionError, match="timed out while waiting for handshake"):
            backend.predict(obs)  # each reconnect attempt now times out in the handshake
        elapsed = time.monotonic() - begin
        cfg = backend.config
        assert elapsed >= 3 * cfg.connect_timeout_s
        assert elapsed < 3 * cfg.connect_timeout_s + sum(cfg.backoff_delays()) + SLACK_S
        assert elapsed < cfg.worst_case_s
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert not backend.ready
    assert backend.health()["ok"]  # the probe reconnects, which clears a connection failure
    assert backend.predict(obs).horizon == 10


def test_send_blocked_by_a_stopped_server_is_cut_at_the_deadline(servers, backends) -> None:
    """A big request to a server that stopped reading would block in sendall; the watchdog cuts it."""
    server = start(servers)
    backend = backend_for(backends, server.port, image_size=1024, resize_to=0)
    backend.connect()  # no request yet: the server's receive window is still small
    server.proc.send_signal(signal.SIGSTOP)
    try:
        begin = time.monotonic()
        with pytest.raises(OpenPITimeoutError):
            backend.predict(make_obs(size=1024))
        assert time.monotonic() - begin < backend.config.request_timeout_s + SLACK_S
    finally:
        server.proc.send_signal(signal.SIGCONT)


def test_silent_port_exhausts_retries_within_budget() -> None:
    with silent_listener() as listener:
        backend = OpenPIBackend(OpenPIConfig(port=listener.getsockname()[1], **FAST))
        begin = time.monotonic()
        with pytest.raises(OpenPIConnectionError, match="unreachable after 3 attempt"):
            backend.predict(make_obs())
        assert time.monotonic() - begin < backend.config.worst_case_s + SLACK_S
        begin = time.monotonic()
        health = backend.health()  # one probe attempt, bounded by connect_timeout_s
        assert time.monotonic() - begin < backend.config.connect_timeout_s + SLACK_S
        assert not health["ok"] and "unreachable after 1 attempt" in health["probe_error"]
        assert "OpenPIConnectionError" in health["last_error"]


def test_server_side_error_is_reported_not_retried(servers, backends) -> None:
    server = start(servers)
    wrong = backend_for(backends, server.port, proprio_key="observation/proprio")
    begin = time.monotonic()
    with pytest.raises(OpenPIServerError, match=r"failed on the request:\n(.|\n)*KeyError"):
        wrong.predict(make_obs())
    assert time.monotonic() - begin < SLACK_S
    # the server is fine (a probe reconnects) but our mapping is not: not ready until a request works
    health = wrong.health()
    assert health["connected"] and not health["ok"] and "KeyError" in health["last_error"]
    right = backend_for(backends, server.port)
    assert right.predict(make_obs()).horizon == 10


def test_api_key_is_sent_and_a_rejection_is_not_retried(servers, backends) -> None:
    server = start(servers, 0, "--api-key", "s3cret")
    begin = time.monotonic()
    with pytest.raises(OpenPIConnectionError, match="HTTP 401 \\(check api_key\\)"):
        backend_for(backends, server.port, backoff_s=1.0, backoff_max_s=1.0).predict(make_obs())
    assert time.monotonic() - begin < 1.0  # no backoff sleep happened
    assert backend_for(backends, server.port, api_key="s3cret").predict(make_obs()).horizon == 10


def test_concurrent_predicts_each_get_their_own_answer(servers, backends) -> None:
    server = start(servers)
    backend = backend_for(backends, server.port)
    errors: list[str] = []

    def worker(index: int) -> None:
        for step in range(4):
            state = np.full(15, index + step / 10, np.float32)
            chunk = backend.predict(make_obs(state=state))
            if abs(chunk.actions[0, 0] - state.mean()) > 1e-5:
                errors.append(f"thread {index} step {step}: got {chunk.actions[0, 0]}, want {state.mean()}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == [] and backend.requests == 12 and backend.failures == 0
