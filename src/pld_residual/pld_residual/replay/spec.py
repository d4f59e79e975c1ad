"""Declared shapes and dtypes of the named fields a replay buffer stores.

The buffer preallocates one array per field, so every field's shape and dtype is fixed up front and every
added value is checked against it: a wrong shape, dtype or a NaN is reported at `add` time with the field's
name instead of surfacing later as a silent broadcast or a NaN loss in the learner.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

FLOAT32 = "float32"
UINT8 = "uint8"


@dataclass(frozen=True)
class FieldSpec:
    """Shape and dtype of one stored field (per observation or per transition, without a batch axis)."""

    shape: tuple[int, ...]
    dtype: str  # a numpy dtype name; anything np.dtype() accepts is normalised to its name

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.shape)
        if any(d <= 0 for d in shape):
            raise ValueError(f"field shape must have positive dimensions, got {self.shape}")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError as error:
            raise ValueError(f"field dtype {self.dtype!r} is not a numpy dtype") from error
        if dtype.kind not in "fuib":
            raise ValueError(f"field dtype must be a numeric or bool dtype, got {self.dtype!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", dtype.name)

    @property
    def size(self) -> int:
        """Number of elements of one value."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of one stored value."""
        return self.size * np.dtype(self.dtype).itemsize

    @property
    def is_float(self) -> bool:
        return np.dtype(self.dtype).kind == "f"


@dataclass(frozen=True)
class ObsSpec:
    """An ordered set of named fields, e.g. `features` float32 [128], `images` uint8 [2, 64, 64, 3].

    Used for observations and, in the same form, for optional per-transition extras.
    """

    fields: tuple[tuple[str, FieldSpec], ...]

    def __post_init__(self) -> None:
        names = [name for name, _ in self.fields]
        if not names:
            raise ValueError("a spec needs at least one field")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate field names in {names}")
        for name, field in self.fields:
            if not isinstance(name, str) or not name:
                raise ValueError(f"field names must be non-empty strings, got {name!r}")
            if not isinstance(field, FieldSpec):
                raise TypeError(f"field {name!r}: expected a FieldSpec, got {type(field).__name__}")

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> ObsSpec:
        """Build from `{name: (shape, dtype)}` or the `to_dict` form `{name: {"shape": s, "dtype": d}}`."""
        parsed = []
        for name, value in fields.items():
            if isinstance(value, FieldSpec):
                parsed.append((name, value))
            elif isinstance(value, Mapping):
                parsed.append((name, FieldSpec(tuple(value["shape"]), value["dtype"])))
            else:
                shape, dtype = value
                parsed.append((name, FieldSpec(tuple(shape), dtype)))
        return cls(tuple(parsed))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-friendly form, used in saved buffers."""
        return {name: {"shape": list(f.shape), "dtype": f.dtype} for name, f in self.fields}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    def __getitem__(self, name: str) -> FieldSpec:
        for key, field in self.fields:
            if key == name:
                return field
        raise KeyError(name)

    def __iter__(self) -> Iterator[tuple[str, FieldSpec]]:
        return iter(self.fields)

    @property
    def nbytes(self) -> int:
        """Bytes of one value of every field, in the declared dtypes."""
        return sum(f.nbytes for _, f in self.fields)

    @property
    def size(self) -> int:
        """Number of elements of one value of every field."""
        return sum(f.size for _, f in self.fields)

    def validate(self, values: Mapping[str, Any], what: str = "observation") -> None:
        """Raise a ValueError naming the field if `values` does not match this spec exactly.

        Exact dtypes are required (no silent casts): a float64 array for a float32 field usually means the
        caller skipped a conversion that the learner relies on. Float fields must be finite.
        """
        if not isinstance(values, Mapping):
            raise TypeError(f"{what}: expected a dict of arrays, got {type(values).__name__}")
        missing = [name for name in self.names if name not in values]
        if missing:
            raise ValueError(f"{what}: missing field(s) {missing}; expected {list(self.names)}")
        unexpected = sorted(set(values) - set(self.names))
        if unexpected:
            raise ValueError(f"{what}: unexpected field(s) {unexpected}; expected {list(self.names)}")
        for name, field in self.fields:
            value = values[name]
            if isinstance(value, np.generic):  # a numpy scalar, e.g. np.float32(1.0), for a shape-() field
                value = np.asarray(value)
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{what} field {name!r}: expected a numpy array, got {type(value).__name__}")
            if value.shape != field.shape:
                raise ValueError(f"{what} field {name!r}: shape {value.shape}, expected {field.shape}")
            if value.dtype != np.dtype(field.dtype):
                raise ValueError(f"{what} field {name!r}: dtype {value.dtype}, expected {field.dtype}")
            if field.is_float and not np.all(np.isfinite(value)):
                raise ValueError(f"{what} field {name!r}: contains NaN or inf")


def pld_obs_spec(
    feature_dim: int = 128,
    proprio_dim: int = 15,
    action_dim: int = 7,
    image_shape: tuple[int, ...] | None = None,
) -> ObsSpec:
    """The residual learner's compact observation: frozen-VLA features, proprioception and the base action.

    `image_shape` (e.g. (2, 64, 64, 3)) adds uint8 `images` for the image-encoder path on GPU machines.
    """
    fields: list[tuple[str, FieldSpec]] = [
        ("features", FieldSpec((feature_dim,), FLOAT32)),
        ("proprio", FieldSpec((proprio_dim,), FLOAT32)),
        ("base_action", FieldSpec((action_dim,), FLOAT32)),
    ]
    if image_shape is not None:
        fields.append(("images", FieldSpec(tuple(image_shape), UINT8)))
    return ObsSpec(tuple(fields))
