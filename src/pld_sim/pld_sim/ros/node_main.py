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
    except Exception:
        # Ctrl-C can shut the context down while the executor builds its next wait set; rclpy then raises
        # RCLError ("context is not valid") instead of ExternalShutdownException. That is a clean stop.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
