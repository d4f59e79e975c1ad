"""Config dataclass -> ROS parameters, the same way for every PLD node (design.md §7.5).

Each node maps its parameters to its config in exactly one function, which calls `declare_config` and
then the config's own validating `from_dict`.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


def field_defaults(config_cls: type, defaults: Any = None) -> dict[str, Any]:
    """Default of every field: from the `defaults` instance, else the class's declared defaults (without
    building an instance, whose own defaults may need something that is not installed here)."""
    if defaults is not None:
        return {f.name: getattr(defaults, f.name) for f in fields(config_cls)}
    return {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(config_cls)}  # type: ignore[misc]


def declare_config(node: Node, config_cls: type, defaults: Any = None) -> dict[str, Any]:
    """Declare one read-only parameter per field (its `help` metadata as description) and return the
    values. Dict fields travel as JSON object strings (ROS parameters have no dict type); float fields
    accept integers (`-p rate_hz:=20`). The config's `from_dict` validates what comes back."""
    values = {}
    help_texts = {f.name: f.metadata.get("help", "") for f in fields(config_cls)}
    for name, default in field_defaults(config_cls, defaults).items():
        if isinstance(default, dict):
            default = json.dumps(default, sort_keys=True)
        descriptor = ParameterDescriptor(
            description=help_texts[name], read_only=True, dynamic_typing=isinstance(default, float)
        )
        values[name] = node.declare_parameter(name, default, descriptor).value
    return values
