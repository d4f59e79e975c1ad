"""`OpenPIConfig`: where the server is, how our observation maps to its keys and its actions back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import numpy as np

from pld_vla_server.types import ACTION_DIM

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
            build_tree([(key, None) for key in self.request_keys()], self.nested_keys)
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


def build_tree(items: list[tuple[str, Any]], nested: bool) -> dict[str, Any]:
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
