"""Subscriber peer for test_interfaces_two_process: echoes every pld_interfaces message it receives.

Run as a separate process; prints `READY` once subscribed, then one JSON line per message
({"type": ..., "fields": ...}) and exits after one message of every type.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from pld_interfaces import msg as pld_msg

TYPES = ["Observation", "ActionChunk", "ActionCommand", "Reward", "EpisodeEvent", "PolicyParams"]


def to_plain(value):
    """A ROS message (or field value) as JSON-able Python data, recursively."""
    if hasattr(value, "get_fields_and_field_types"):
        return {name: to_plain(getattr(value, name)) for name in value.get_fields_and_field_types()}
    if (
        isinstance(value, np.ndarray | list | tuple | bytes | bytearray | memoryview)
        or type(value).__name__ == "array"
    ):
        return [to_plain(v) for v in (value.tolist() if hasattr(value, "tolist") else list(value))]
    if isinstance(value, np.generic):
        return value.item()
    return value


def main() -> int:
    rclpy.init()
    node = rclpy.create_node("interface_peer")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received: dict[str, dict] = {}
    for name in TYPES:
        node.create_subscription(
            getattr(pld_msg, name),
            f"pld_test/{name}",
            lambda m, n=name: received.setdefault(n, to_plain(m)),
            qos,
        )
    print("READY", flush=True)
    deadline = time.monotonic() + 60
    while len(received) < len(TYPES) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    for name, fields in received.items():
        print(json.dumps({"type": name, "fields": fields}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if len(received) == len(TYPES) else 1


if __name__ == "__main__":
    sys.exit(main())
