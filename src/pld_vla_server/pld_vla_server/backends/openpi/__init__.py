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

from pld_vla_server.backends.openpi.client import OpenPIBackend
from pld_vla_server.backends.openpi.codec import decode_numpy, encode_numpy, packb, unpackb
from pld_vla_server.backends.openpi.config import OpenPIConfig
from pld_vla_server.backends.openpi.mapping import (
    OpenPIConnectionError,
    OpenPIServerError,
    OpenPITimeoutError,
    observation_to_request,
    resize_image,
    response_to_chunk,
)

__all__ = [
    "OpenPIBackend",
    "OpenPIConfig",
    "OpenPIConnectionError",
    "OpenPIServerError",
    "OpenPITimeoutError",
    "decode_numpy",
    "encode_numpy",
    "observation_to_request",
    "packb",
    "resize_image",
    "response_to_chunk",
    "unpackb",
]
