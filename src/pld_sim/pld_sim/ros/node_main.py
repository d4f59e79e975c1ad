"""The `main()` every PLD node shares: init, spin, clean shutdown, exit 2 on bad parameters."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_node(make_node: Callable[[], Node], program: str, args: list[str] | None = None) -> int:
    """Run one node until Ctrl-C / shutdown; a ValueError while building it (parameters) exits 2."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:  # invalid parameters: say which, without a traceback
        print(f"{program}: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
