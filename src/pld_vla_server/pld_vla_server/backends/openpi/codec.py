"""msgpack with numpy arrays the way openpi's policy servers send and expect them (pure, no I/O)."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

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
