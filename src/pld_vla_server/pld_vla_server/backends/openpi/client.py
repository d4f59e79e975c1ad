"""`OpenPIBackend`: the websocket client, with deadlines on every blocking step and bounded retries."""

from __future__ import annotations

import contextlib
import inspect
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import websockets.exceptions as ws_exc
import websockets.sync.client as ws_client
from websockets.protocol import State

from pld_vla_server.backends.base import VLABackend, register_backend
from pld_vla_server.backends.openpi.codec import packb, unpackb
from pld_vla_server.backends.openpi.config import OpenPIConfig
from pld_vla_server.backends.openpi.mapping import (
    OpenPIConnectionError,
    OpenPIServerError,
    OpenPITimeoutError,
    observation_to_request,
    response_to_chunk,
)
from pld_vla_server.types import ActionChunk, InputSpec, VLAObservation, validate_observation

log = logging.getLogger(__name__)

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
