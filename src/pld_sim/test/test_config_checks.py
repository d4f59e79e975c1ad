"""The shared config checks: field types as the defaults say, ints accepted (and stored) as floats,
unknown keys refused."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pld_sim.config_checks import check_field_types, config_from_dict


@dataclass(frozen=True)
class Example:
    rate: float = 1.0
    count: int = 2
    name: str = "x"
    on: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)


def test_ints_become_floats_and_right_types_pass() -> None:
    example = config_from_dict(Example, {"rate": 3, "count": 4, "name": "y", "on": True})
    assert example.rate == 3.0 and isinstance(example.rate, float) and example.count == 4


@pytest.mark.parametrize(
    ("values", "field"),
    [({"rate": float("nan")}, "rate"), ({"rate": True}, "rate"), ({"count": 1.5}, "count"),
     ({"count": True}, "count"), ({"name": 3}, "name"), ({"on": 1}, "on")],
)  # fmt: skip
def test_wrong_types_name_the_field(values: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"Example\.{field}: must be a finite"):
        Example(**values)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match=r"Example: unknown option\(s\) \['rte'\]"):
        config_from_dict(Example, {"rte": 1.0})
