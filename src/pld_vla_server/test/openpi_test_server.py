"""A protocol-conformant stand-in for an openpi websocket policy server (the wire peer for our client).

Run as a subprocess: `python openpi_test_server.py --port P` (P = 0 picks a free port). It listens on
loopback only, prints `LISTENING <host>:<port>` once bound, and exits by itself after
`--max-lifetime-s` so a crashed test cannot leave it behind.

Protocol, as openpi's server speaks it: on connect send one msgpack metadata map; then answer every
binary msgpack observation with one response map; on a failure send the traceback as a text frame and
close with code 1011. The msgpack-numpy codec here is written separately from the client's on purpose
and is as strict as openpi's own: arrays are recognised only by the bytes key b"__ndarray__", so a
client that tags them differently fails against this server as it would against the real one.

Answer (deterministic): `actions[k, d] = mean(state) + 0.01 k + 0.001 d`, float32 `[horizon, dim]`;
`received` echoes dtype, shape and sum of every array (and the prompt) it decoded, keyed by "/"-joined
path; `state_echo` returns the state array as received; `mean` (np.float32) and `step` (np.int64) are
numpy scalars; `features` is float32 `[4]`; `server_timing` mimics openpi's.
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import sys
import time
import traceback
from typing import Any

import msgpack
import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode


def _pack_hook(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _unpack_hook(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_pack_hook)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, object_hook=_unpack_hook)


def describe(tree: Any, prefix: str = "") -> dict[str, dict[str, Any]]:
    """dtype/shape/sum of every array and the value of every string, by "/"-joined path."""
    out: dict[str, dict[str, Any]] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.update(describe(value, f"{prefix}/{key}" if prefix else str(key)))
    elif isinstance(tree, np.ndarray):
        out[prefix] = {
            "dtype": tree.dtype.str,
            "shape": list(tree.shape),
            "sum": float(tree.sum(dtype=np.float64)),
        }
    elif isinstance(tree, str):
        out[prefix] = {"type": "str", "value": tree}
    else:
        out[prefix] = {"type": type(tree).__name__}
    return out


def lookup(tree: dict, key: str) -> Any:
    if key in tree:
        return tree[key]
    node: Any = tree
    for part in key.split("/"):
        node = node[part]
    return node


class PolicyStandIn:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.step = 0
        self.metadata = (
            json.loads(args.metadata)
            if args.metadata
            else {
                "policy": "openpi_test_server",
                "action_horizon": args.horizon,
                "action_dim": args.action_dim,
            }
        )

    def infer(self, obs: dict) -> dict:
        state = np.asarray(lookup(obs, self.args.state_key))
        if state.dtype.kind != "f":
            raise TypeError(f"{self.args.state_key} must be a float array, got {type(state).__name__}")
        mean = float(state.mean())
        rows = np.arange(self.args.horizon)[:, None] * 0.01
        cols = np.arange(self.args.action_dim)[None, :] * 0.001
        self.step += 1
        return {
            "actions": (mean + rows + cols).astype(np.float32),
            "received": describe(obs),
            "state_echo": state,
            "mean": np.float32(state.mean(dtype=np.float32)),
            "step": np.int64(self.step),
            "features": np.arange(4, dtype=np.float32) + mean,
        }

    async def handler(self, websocket: ServerConnection) -> None:
        await websocket.send(pack(self.metadata))
        while True:
            try:
                obs = unpack(await websocket.recv())
                start = time.monotonic()
                if self.args.delay_s:
                    await asyncio.sleep(self.args.delay_s)
                response = self.infer(obs)
                response["server_timing"] = {"infer_ms": (time.monotonic() - start) * 1e3}
                await websocket.send(pack(response))
            except ConnectionClosed:
                break
            except Exception:
                await websocket.send(traceback.format_exc())
                await websocket.close(code=CloseCode.INTERNAL_ERROR, reason="Internal server error")
                break

    def check_api_key(self, connection: ServerConnection, request: Any) -> Any:
        if self.args.api_key and request.headers.get("Authorization") != f"Api-Key {self.args.api_key}":
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "bad api key\n")
        return None


async def main(args: argparse.Namespace) -> None:
    policy = PolicyStandIn(args)
    async with serve(
        policy.handler,
        args.host,
        args.port,
        compression=None,
        max_size=None,
        process_request=policy.check_api_key,
    ) as server:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        print(f"LISTENING {host}:{port}", flush=True)
        try:
            await asyncio.wait_for(server.serve_forever(), timeout=args.max_lifetime_s)
        except TimeoutError:
            print("max lifetime reached", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--action-dim", type=int, default=8)
    parser.add_argument("--state-key", default="observation/state")
    parser.add_argument("--delay-s", type=float, default=0.0, help="sleep before answering each request")
    parser.add_argument("--api-key", default="", help="require 'Authorization: Api-Key <key>'")
    parser.add_argument("--metadata", default="", help="metadata map as JSON")
    parser.add_argument("--max-lifetime-s", type=float, default=300.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
