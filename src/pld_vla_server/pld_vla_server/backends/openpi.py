"""`openpi`: a backend that asks a remote openpi policy server (pi0 / pi0.5) for action chunks.

The openpi websocket policy protocol: binary websocket frames of msgpack, numpy arrays as maps
`{b"__ndarray__": True, b"data": raw bytes, b"dtype": "<f4", b"shape": [...]}` and numpy scalars as
`{b"__npgeneric__": True, b"data": python scalar, b"dtype": ...}`. On connect the server sends one
metadata map; then every observation map the client sends is answered by one response map holding
`actions` `[H, D]` (D is often > 7: padded action spaces) and maybe other keys (`server_timing`). A server
that fails on a request sends its traceback as a *text* frame and closes the connection.

Connection policy (why): the server may still be loading a multi-GB checkpoint when the node starts,
so the backend connects lazily on the first `predict` (or `connect()` / `health()`), never in the
constructor. Every blocking step has a deadline so a ROS callback thread never hangs: one attempt is
`connect_timeout_s` for TCP + websocket handshake + metadata, then `request_timeout_s` for send +
receive. Transient failures (refused, reset, dropped, connect timeout, HTTP 5xx handshake) are retried
`max_retries` times with doubling backoff; a request that times out is not retried (the server is
alive but busy, and resending would queue more work on it), nor are rejections (HTTP 4xx: api key) or
server-side errors. `OpenPIConfig.worst_case_s` is the hard upper bound of one `predict`.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

import msgpack
import numpy as np
import websockets.exceptions as ws_exc
import websockets.sync.client as ws_client
from websockets.protocol import State

from pld_vla_server.backends.base import VLABackend, register_backend
from pld_vla_server.types import ACTION_DIM, ActionChunk, InputSpec, VLAObservation, validate_observation

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# msgpack-numpy codec (wire compatible with openpi_client.msgpack_numpy, written independently)
# --------------------------------------------------------------------------------------------------

# Keys go out as *bytes* (msgpack bin): openpi's decoder looks for b"__ndarray__" only.
_ND, _NPG, _DATA, _DTYPE, _SHAPE = b"__ndarray__", b"__npgeneric__", b"data", b"dtype", b"shape"
_REJECTED_KINDS = {"O": "object", "V": "void/structured"}
_SCALAR_KINDS = "biufUS"  # numpy scalar kinds whose .item() msgpack can carry


def encode_numpy(obj: Any) -> Any:
    """msgpack `default` hook: numpy arrays and scalars to openpi's tagged maps; other types unchanged.

    Object and structured dtypes are refused: their raw bytes mean nothing to the peer. msgpack only
    calls this for types it cannot pack itself, so `np.float64` (a `float` subclass) travels as a plain
    msgpack float, exactly as with openpi's own packer.
    """
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in _REJECTED_KINDS:
            raise TypeError(f"cannot send numpy {_REJECTED_KINDS[obj.dtype.kind]} array (dtype {obj.dtype})")
        return {_ND: True, _DATA: obj.tobytes(order="C"), _DTYPE: obj.dtype.str, _SHAPE: list(obj.shape)}
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in _SCALAR_KINDS:
            raise TypeError(f"cannot send numpy scalar of dtype {obj.dtype}")
        return {_NPG: True, _DATA: obj.item(), _DTYPE: obj.dtype.str}
    return obj


def _tag(obj: dict, key: bytes) -> Any:
    """Value under a tag key sent as bytes (openpi) or as str (other implementations)."""
    if key in obj:
        return obj[key]
    return obj[key.decode()]


def decode_numpy(obj: dict) -> Any:
    """msgpack `object_hook`: tagged maps back to numpy (writable copies); other maps unchanged."""
    if _ND in obj or "__ndarray__" in obj:
        dtype = np.dtype(_as_str(_tag(obj, _DTYPE)))
        shape = tuple(int(n) for n in _tag(obj, _SHAPE))
        data = _tag(obj, _DATA)
        expected = math.prod(shape) * dtype.itemsize
        if not isinstance(data, bytes | bytearray) or len(data) != expected:
            got = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
            raise ValueError(
                f"corrupt ndarray frame: dtype {dtype} shape {shape} needs {expected} bytes, got {got}"
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if _NPG in obj or "__npgeneric__" in obj:
        return np.dtype(_as_str(_tag(obj, _DTYPE))).type(_tag(obj, _DATA))
    return obj


def _as_str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def packb(obj: Any) -> bytes:
    """Serialise a (nested) message with numpy arrays/scalars the way openpi peers expect."""
    return msgpack.packb(obj, default=encode_numpy, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """Deserialise a message from an openpi peer (arrays come back as writable numpy arrays)."""
    return msgpack.unpackb(data, object_hook=decode_numpy, raw=False)


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------

_IDENTITY_COLUMNS = tuple(range(ACTION_DIM))
_STATE_DTYPES = ("float32", "float64")


def _coerce(value: Any, kind: type, name: str) -> Any:
    """`value` as `kind`: ints may come as integral floats, floats as ints; anything else is an error."""
    if kind is bool:
        ok = isinstance(value, bool | np.bool_)
    elif kind is str:
        ok = isinstance(value, str)
    elif isinstance(value, bool | np.bool_):
        ok = False
    elif kind is int:
        ok = isinstance(value, int | np.integer) or (isinstance(value, float) and value.is_integer())
    else:
        ok = isinstance(value, int | float | np.integer | np.floating)
    if not ok:
        raise ValueError(f"OpenPIConfig.{name}: must be {kind.__name__}, got {value!r}")
    return kind(value)


def _parse_mapping(value: Any, name: str) -> dict[str, Any]:
    """A dict, or a list of "name=value" strings (ROS parameters cannot hold dicts)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"OpenPIConfig.{name}: expected 'name=value' strings, got {item!r}")
            key, _, val = item.partition("=")
            out[key.strip()] = val.strip()
        return out
    raise ValueError(f"OpenPIConfig.{name}: expected a mapping, got {type(value).__name__}")


@dataclass(frozen=True)
class OpenPIConfig:
    """Where the policy server is, how hard to try, and how our fields map to the server's keys.

    Defaults follow openpi's LIBERO example client (flat keys "observation/image",
    "observation/wrist_image", "observation/state", "prompt"; 224 px images; first 7 action columns).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str = field(default="", repr=False)  # sent as "Authorization: Api-Key <key>"; kept out of repr
    connect_timeout_s: float = 5.0  # per attempt: TCP + websocket handshake + metadata
    request_timeout_s: float = 30.0  # per attempt: send observation + receive actions
    max_retries: int = 3  # extra attempts after the first, for transient failures only
    backoff_s: float = 0.5  # sleep before retry i is backoff_s * 2**(i-1) ...
    backoff_max_s: float = 4.0  # ... capped at this
    max_message_mb: float = 64.0  # largest message accepted from the server
    # observation -> server keys ("a/b" is one flat key unless nested_keys, then obs["a"]["b"])
    image_keys: dict[str, str] = field(
        default_factory=lambda: {"side": "observation/image", "wrist": "observation/wrist_image"}
    )
    proprio_key: str = "observation/state"
    # optional split of proprio over several keys, {server key: [start, stop)}; replaces proprio_key
    proprio_slices: dict[str, list[int]] = field(default_factory=dict)
    prompt_key: str = "prompt"
    nested_keys: bool = False
    state_dtype: str = "float32"
    image_size: int = 128  # our cameras' square size (input spec), validated before sending
    proprio_dim: int = 15
    resize_to: int = 224  # images are resized (PIL bilinear) to this square size; 0 sends them as is
    # server response -> our ActionChunk
    actions_key: str = "actions"
    action_columns: tuple[int, ...] = _IDENTITY_COLUMNS  # which server columns form our 7-D action
    action_scale: tuple[float, ...] = (1.0,) * ACTION_DIM  # ours = server[:, columns] * scale + offset
    action_offset: tuple[float, ...] = (0.0,) * ACTION_DIM
    horizon: int = 10  # rows kept from the server's chunk (fewer if it sends fewer); 0 keeps all
    features_key: str = ""  # response key holding a feature vector for the residual; "" = none

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for f in fields(self):  # YAML / JSON / ROS give 8000.0 for ints or 5 for floats: coerce, strictly
            kind = type(f.default) if f.default is not MISSING else None
            if kind in (int, float, bool, str):
                set_(self, f.name, _coerce(getattr(self, f.name), kind, f.name))
        set_(
            self,
            "image_keys",
            {str(k): str(v) for k, v in _parse_mapping(self.image_keys, "image_keys").items()},
        )
        slices = _parse_mapping(self.proprio_slices, "proprio_slices")
        parsed: dict[str, list[int]] = {}
        for key, bounds in slices.items():
            if isinstance(bounds, str):
                bounds = bounds.replace(":", ",").split(",")
            try:
                start, stop = (int(b) for b in bounds)
            except (TypeError, ValueError):
                raise ValueError(
                    f"OpenPIConfig.proprio_slices[{key!r}]: expected [start, stop], got {bounds!r}"
                ) from None
            parsed[str(key)] = [start, stop]
        set_(self, "proprio_slices", parsed)
        for name in ("action_columns", "action_scale", "action_offset"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or len(value) != ACTION_DIM:
                raise ValueError(f"OpenPIConfig.{name}: needs {ACTION_DIM} entries, got {value!r}")
        for name, kind in (("action_columns", int), ("action_scale", float), ("action_offset", float)):
            set_(self, name, tuple(_coerce(v, kind, name) for v in getattr(self, name)))
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"OpenPIConfig.{name}: {why} (got {getattr(self, name)!r})")

        if not self.host or any(c.isspace() or c in "/?#" for c in self.host):
            raise bad("host", "must be a host name or IP address")
        if not 1 <= self.port <= 65535:
            raise bad("port", "must be in 1..65535")
        for name in ("connect_timeout_s", "request_timeout_s", "max_message_mb"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise bad(name, "must be a positive number")
        if not 0 <= self.max_retries <= 10:
            raise bad("max_retries", "must be in 0..10")
        if not (math.isfinite(self.backoff_s) and 0 <= self.backoff_s <= self.backoff_max_s <= 60):
            raise bad("backoff_s", "needs 0 <= backoff_s <= backoff_max_s <= 60")
        if not self.image_keys or any(not cam or not key for cam, key in self.image_keys.items()):
            raise bad("image_keys", "needs at least one camera, with non-empty names and keys")
        for key, (start, stop) in self.proprio_slices.items():
            if not key or not 0 <= start < stop <= self.proprio_dim:
                raise bad(
                    "proprio_slices", f"{key!r} needs 0 <= start < stop <= proprio_dim={self.proprio_dim}"
                )
        if not self.proprio_slices and not self.proprio_key:
            raise bad("proprio_key", "must be set unless proprio_slices is given")
        if not self.prompt_key:
            raise bad("prompt_key", "must be non-empty")
        if self.state_dtype not in _STATE_DTYPES:
            raise bad("state_dtype", f"must be one of {_STATE_DTYPES}")
        if self.image_size < 8:
            raise bad("image_size", "must be >= 8")
        if self.proprio_dim < 1:
            raise bad("proprio_dim", "must be >= 1")
        if self.resize_to != 0 and self.resize_to < 8:
            raise bad("resize_to", "must be 0 (no resize) or >= 8")
        if not self.actions_key:
            raise bad("actions_key", "must be non-empty")
        if any(c < 0 for c in self.action_columns):
            raise bad("action_columns", "column indices must be >= 0")
        if not all(math.isfinite(v) for v in self.action_scale + self.action_offset):
            raise bad("action_scale", "scale and offset must be finite")
        if self.horizon < 0:
            raise bad("horizon", "must be >= 0 (0 keeps every row)")
        # every key must land in its own slot of the request (catches collisions and, with nested
        # keys, a key that is also the parent of another)
        try:
            _build_tree([(key, None) for key in self.request_keys()], self.nested_keys)
        except ValueError as exc:
            raise ValueError(f"OpenPIConfig: observation keys clash: {exc}") from None

    def request_keys(self) -> list[str]:
        """Every server key an observation request fills."""
        state_keys = list(self.proprio_slices) if self.proprio_slices else [self.proprio_key]
        return [*self.image_keys.values(), *state_keys, self.prompt_key]

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    def backoff_delays(self) -> list[float]:
        """Sleeps before retry 1..max_retries."""
        return [min(self.backoff_s * 2**i, self.backoff_max_s) for i in range(self.max_retries)]

    @property
    def worst_case_s(self) -> float:
        """Upper bound of one `predict` when everything fails as slowly as allowed."""
        attempts = self.max_retries + 1
        per_attempt = self.connect_timeout_s + self.request_timeout_s + self.close_timeout_s
        return attempts * per_attempt + sum(self.backoff_delays())

    @property
    def close_timeout_s(self) -> float:
        """Bound of a polite websocket close (only healthy connections are closed politely)."""
        return min(1.0, self.connect_timeout_s)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> OpenPIConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"OpenPIConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("action_columns", "action_scale", "action_offset"):
            out[name] = list(out[name])
        return out


# --------------------------------------------------------------------------------------------------
# Observation -> request, response -> ActionChunk (pure)
# --------------------------------------------------------------------------------------------------


def _build_tree(items: list[tuple[str, Any]], nested: bool) -> dict[str, Any]:
    """A request map from (key, value) pairs; with `nested`, "a/b" becomes tree["a"]["b"]."""
    tree: dict[str, Any] = {}
    for key, value in items:
        parts = key.split("/") if nested else [key]
        if any(not p for p in parts):
            raise ValueError(f"key {key!r} has an empty path component")
        node = tree
        for part in parts[:-1]:
            if part not in node:
                node[part] = {}
            elif not isinstance(node[part], dict):
                raise ValueError(f"key {key!r} runs through {part!r}, which already holds a value")
            node = node[part]
        if parts[-1] in node:
            raise ValueError(f"key {key!r} is filled twice")
        node[parts[-1]] = value
    return tree


def _lookup(tree: Mapping[str, Any], key: str) -> Any:
    """A flat key if present, else the "/"-separated path; KeyError when neither exists."""
    if key in tree:
        return tree[key]
    node: Any = tree
    for part in key.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 HxWx3 image to size x size (bilinear, as openpi's client-side image tools use PIL)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    from PIL import Image  # only needed when resizing

    return np.asarray(Image.fromarray(image).resize((size, size), resample=Image.Resampling.BILINEAR))


def observation_to_request(obs: VLAObservation, config: OpenPIConfig) -> dict[str, Any]:
    """The observation map the server expects (images resized, proprio as state, instruction as prompt)."""
    items: list[tuple[str, Any]] = []
    for camera, key in config.image_keys.items():
        image = np.ascontiguousarray(obs.images[camera], dtype=np.uint8)
        items.append((key, resize_image(image, config.resize_to) if config.resize_to else image))
    state = np.asarray(obs.proprio, dtype=config.state_dtype)
    if config.proprio_slices:
        items += [(key, state[start:stop].copy()) for key, (start, stop) in config.proprio_slices.items()]
    else:
        items.append((config.proprio_key, state))
    items.append((config.prompt_key, obs.instruction))
    return _build_tree(items, config.nested_keys)


class OpenPIConnectionError(ConnectionError):
    """The policy server could not be reached, dropped the connection or refused it (after retries)."""


class OpenPITimeoutError(OpenPIConnectionError, TimeoutError):
    """The policy server took the request but did not answer within `request_timeout_s`."""


class OpenPIServerError(RuntimeError):
    """The policy server reported an error (its traceback) or sent a response we cannot use."""


def response_to_chunk(
    response: Any, config: OpenPIConfig, inference_ms: float = 0.0, model_id: str = "openpi"
) -> ActionChunk:
    """Our `[H, 7]` chunk from the server's `actions` (columns picked, scaled, offset, rows cut)."""
    if not isinstance(response, Mapping):
        raise OpenPIServerError(f"server response is a {type(response).__name__}, expected a map")
    try:
        raw = _lookup(response, config.actions_key)
    except KeyError:
        raise OpenPIServerError(
            f"server response has no {config.actions_key!r} (keys: {sorted(map(str, response))})"
        ) from None
    actions = np.asarray(raw)
    if actions.dtype.kind not in "biuf":
        raise OpenPIServerError(f"server {config.actions_key!r} has non-numeric dtype {actions.dtype}")
    if actions.ndim == 1:  # a single action
        actions = actions[None, :]
    if actions.ndim != 2 or actions.shape[0] == 0:
        raise OpenPIServerError(f"server {config.actions_key!r} must be [H>0, D], got shape {actions.shape}")
    needed = max(config.action_columns) + 1
    if actions.shape[1] < needed:
        raise OpenPIServerError(
            f"server {config.actions_key!r} has {actions.shape[1]} columns but action_columns "
            f"{list(config.action_columns)} needs {needed}"
        )
    rows = actions if config.horizon == 0 else actions[: config.horizon]
    mapped = rows[:, config.action_columns].astype(np.float64) * config.action_scale + config.action_offset
    if not np.all(np.isfinite(mapped)):
        raise OpenPIServerError(f"server {config.actions_key!r} contains NaN or inf")
    features = None
    if config.features_key:
        try:
            features = np.asarray(_lookup(response, config.features_key), dtype=np.float32).reshape(-1)
        except KeyError:
            features = None  # this server does not send features
        except (TypeError, ValueError) as exc:
            raise OpenPIServerError(f"server {config.features_key!r} is not a numeric vector: {exc}") from exc
    skip = {config.actions_key, config.features_key}
    extras = {str(k): v for k, v in response.items() if k not in skip}
    extras["server_action_shape"] = [int(n) for n in actions.shape]
    return ActionChunk(mapped.astype(np.float32), features, inference_ms, model_id, extras)


# --------------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------------

# websockets >= 17 warns unless the direct-connection behaviour is asked for explicitly
_LEGACY = {"legacy": True} if "legacy" in inspect.signature(ws_client.connect).parameters else {}


class _Retryable(Exception):
    """Internal: a transient failure worth another attempt (wraps the cause)."""


@register_backend
class OpenPIBackend(VLABackend):
    """Client of an openpi websocket policy server; thread-safe, lazily connected, bounded in time."""

    name: ClassVar[str] = "openpi"
    config_type: ClassVar[type] = OpenPIConfig

    def __init__(self, config: OpenPIConfig) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._conn: ws_client.ClientConnection | None = None
        self._metadata: dict[str, Any] | None = None
        self.last_error: str = ""  # of the last predict; "" after a success
        self._error_was_connection = False  # then a successful reconnect clears it
        self.last_inference_ms: float = 0.0
        self.requests = 0
        self.failures = 0

    # -- public surface ------------------------------------------------------------------------------

    @property
    def input_spec(self) -> InputSpec:
        cfg = self.config
        return InputSpec(
            cameras=tuple(cfg.image_keys), image_size=cfg.image_size, proprio_dim=cfg.proprio_dim
        )

    @property
    def model_id(self) -> str:
        return f"openpi@{self.config.host}:{self.config.port}"

    @property
    def server_metadata(self) -> dict[str, Any] | None:
        """The metadata map the server sent on the current (or last) connection; None before any."""
        return self._metadata

    @property
    def ready(self) -> bool:
        """Connected, and no unresolved error (a server-side or mapping failure of the last request stays
        until a request succeeds; a connection failure clears on reconnect). Never blocks or does I/O."""
        return self._connected() and not self.last_error

    def connect(self) -> dict[str, Any]:
        """Connect now (with retries) and return the server metadata; raises `OpenPIConnectionError`."""
        with self._lock:
            self._run_with_retries(lambda: None)
            assert self._metadata is not None
            return self._metadata

    def health(self, probe: bool = True) -> dict[str, Any]:
        """Status for a node to poll. With `probe`, one connection attempt (no retries) if disconnected;
        a request in flight is never waited for."""
        probed_error = ""
        if probe and not self._connected() and self._lock.acquire(blocking=False):
            try:
                self._ensure_connected()
            except _Retryable as exc:
                probed_error = self._describe(exc.__cause__ or exc, attempts=1)
            except Exception as exc:  # rejected handshake, bad metadata: report, do not raise
                probed_error = str(exc)
            finally:
                self._lock.release()
        return {
            "ok": self.ready,
            "uri": self.config.uri,
            "connected": self._connected(),
            "busy": self._lock.locked(),
            "last_error": self.last_error,
            "probe_error": probed_error,
            "last_inference_ms": self.last_inference_ms,
            "requests": self.requests,
            "failures": self.failures,
            "server_metadata": self._metadata,
        }

    def predict(self, obs: VLAObservation) -> ActionChunk:
        start = time.perf_counter()
        validate_observation(obs, self.input_spec)  # bad input fails here, before any network traffic
        payload = packb(observation_to_request(obs, self.config))
        with self._lock:
            self.requests += 1
            try:
                response = self._run_with_retries(lambda: self._exchange(payload))
            except Exception as exc:
                self._failed(exc)
                raise
            elapsed_ms = (time.perf_counter() - start) * 1e3
            try:
                chunk = response_to_chunk(response, self.config, elapsed_ms, self.model_id)
            except OpenPIServerError as exc:
                self._failed(exc)
                raise
            self.last_error = ""
            self.last_inference_ms = elapsed_ms
            return chunk

    def close(self) -> None:
        """Drop the connection (a later `predict` reconnects). Unblocks a request in flight at once."""
        conn = self._conn
        if conn is not None and self._lock.locked():
            _abort(conn)
        with self._lock:
            self._drop()

    # -- internals (call with self._lock held) -------------------------------------------------------

    def _connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.state is State.OPEN

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._error_was_connection = isinstance(exc, OpenPIConnectionError)

    def _run_with_retries(self, action: Any) -> Any:
        delays = self.config.backoff_delays()
        started = time.monotonic()
        for attempt in range(len(delays) + 1):
            try:
                self._ensure_connected()
                return action()
            except _Retryable as exc:
                self._drop()
                cause = exc.__cause__ or exc
                if attempt == len(delays):
                    raise OpenPIConnectionError(
                        self._describe(cause, attempt + 1, time.monotonic() - started)
                    ) from cause
                log.warning(
                    "openpi server %s: %s; retry %d/%d in %.1f s",
                    self.config.uri,
                    _short(cause),
                    attempt + 1,
                    len(delays),
                    delays[attempt],
                )
                time.sleep(delays[attempt])
            except BaseException:
                self._drop()
                raise
        raise AssertionError("unreachable")

    def _ensure_connected(self) -> None:
        if self._connected():
            return
        self._drop()
        cfg = self.config
        deadline = time.monotonic() + cfg.connect_timeout_s
        headers = {"Authorization": f"Api-Key {cfg.api_key}"} if cfg.api_key else None
        try:
            conn = ws_client.connect(
                cfg.uri,
                additional_headers=headers,
                compression=None,
                proxy=None,  # never route through an environment proxy
                open_timeout=cfg.connect_timeout_s,
                ping_interval=None,  # openpi servers infer inside their event loop and cannot pong meanwhile
                close_timeout=cfg.close_timeout_s,
                max_size=int(cfg.max_message_mb * 2**20),
                **_LEGACY,
            )
        except ws_exc.InvalidStatus as exc:
            status = exc.response.status_code
            if status >= 500:
                raise _Retryable() from exc
            hint = "check api_key" if status in (401, 403) else "is this an openpi policy server?"
            raise OpenPIConnectionError(
                f"openpi server at {cfg.host}:{cfg.port} rejected the websocket handshake with HTTP "
                f"{status} ({hint})"
            ) from exc
        except socket.gaierror as exc:
            raise OpenPIConnectionError(
                f"openpi server host {cfg.host!r} cannot be resolved ({exc}); check OpenPIConfig.host"
            ) from exc
        except (OSError, ws_exc.InvalidHandshake, ws_exc.ConnectionClosed) as exc:  # incl. TimeoutError
            raise _Retryable() from exc
        try:
            first = conn.recv(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(first, str):
                raise OpenPIServerError(
                    f"openpi server at {cfg.uri} sent an error instead of metadata:\n{first}"
                )
            metadata = _decode(first, "metadata")
            if not isinstance(metadata, Mapping):
                raise OpenPIServerError(
                    f"openpi server metadata is a {type(metadata).__name__}, expected a map"
                )
        except (TimeoutError, ws_exc.ConnectionClosed) as exc:
            _discard(conn)
            raise _Retryable() from exc
        except BaseException:
            _discard(conn)
            raise
        self._conn = conn
        self._metadata = dict(metadata)
        if self._error_was_connection:
            self.last_error = ""
        log.info("connected to openpi server %s (metadata keys %s)", cfg.uri, sorted(self._metadata))

    def _exchange(self, payload: bytes) -> Any:
        """One request on the open connection, bounded by `request_timeout_s` including the send."""
        conn = self._conn
        assert conn is not None
        timeout = self.config.request_timeout_s
        deadline = time.monotonic() + timeout
        # a server that stops reading would block sendall forever: shut the socket at the deadline
        watchdog = threading.Timer(timeout, _abort, (conn,))
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.send(payload)
            reply = conn.recv(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError as exc:
            raise self._timeout(conn, timeout) from exc
        except ws_exc.ConnectionClosed as exc:
            if time.monotonic() >= deadline:  # closed by our watchdog, not by the server
                raise self._timeout(conn, timeout) from exc
            raise _Retryable() from exc
        except OSError as exc:
            raise _Retryable() from exc
        finally:
            watchdog.cancel()
        if isinstance(reply, str):  # openpi servers send their traceback as text, then close
            raise OpenPIServerError(f"openpi server at {self.config.uri} failed on the request:\n{reply}")
        return _decode(reply, "response")

    def _timeout(self, conn: ws_client.ClientConnection, timeout: float) -> OpenPITimeoutError:
        _abort(conn)
        cfg = self.config
        return OpenPITimeoutError(
            f"openpi server at {cfg.host}:{cfg.port} did not answer within request_timeout_s={timeout:g} s; "
            "check that it is not overloaded or stuck (a first request may compile the model: raise "
            "request_timeout_s)"
        )

    def _describe(self, cause: BaseException, attempts: int, elapsed: float | None = None) -> str:
        cfg = self.config
        spent = f" over {elapsed:.1f} s" if elapsed is not None else ""
        return (
            f"openpi policy server at {cfg.host}:{cfg.port} ({cfg.uri}) unreachable after {attempts} "
            f"attempt(s){spent}: {_short(cause)}. Check that the server is running (openpi: "
            f"scripts/serve_policy.py, port {cfg.port}), that host/port in OpenPIConfig match it, and that "
            "it has finished loading its checkpoint"
        )

    def _drop(self) -> None:
        """Forget the connection: a polite close if it is healthy (bounded by close_timeout), else cut."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.state is State.OPEN:
            try:
                conn.close()
                return
            except Exception:
                pass
        _discard(conn)


def _abort(conn: ws_client.ClientConnection) -> None:
    """Cut the TCP connection now; safe from any thread, unblocks a send or recv in progress."""
    with contextlib.suppress(OSError):
        conn.socket.shutdown(socket.SHUT_RDWR)


def _discard(conn: ws_client.ClientConnection) -> None:
    """Cut the connection and release its socket and receiver thread without a closing handshake."""
    _abort(conn)
    with contextlib.suppress(Exception):  # closing a cut connection may complain; it is gone either way
        conn.close()


def _decode(frame: bytes, what: str) -> Any:
    try:
        return unpackb(frame)
    except Exception as exc:
        raise OpenPIServerError(f"cannot decode the server's {what} ({len(frame)} bytes): {exc}") from exc


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
