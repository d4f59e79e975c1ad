"""Checks every component config dataclass needs, in one place: field types as the defaults say (ROS and
YAML give ints where floats are meant) and dicts with unknown keys refused. ROS-free."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def check_field_types(config: Any) -> None:
    """Raise ValueError naming `<Class>.<field>` when a value does not have its default's type; floats
    must be finite and are stored as float (an int from `-p period_s:=1` included)."""
    name = type(config).__name__
    for f in fields(config):
        value, expected = getattr(config, f.name), type(f.default)
        if expected is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
        if not ok:
            raise ValueError(f"{name}.{f.name}: must be a finite {expected.__name__}, got {value!r}")
        if expected is float:
            object.__setattr__(config, f.name, float(value))


def config_from_dict(cls: type[T], values: Mapping[str, Any]) -> T:
    """`cls(**values)`, refusing keys that are not fields (a typo must not be ignored)."""
    unknown = sorted(set(values) - {f.name for f in fields(cls)})  # type: ignore[arg-type]
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown option(s) {unknown}")
    return cls(**dict(values))
