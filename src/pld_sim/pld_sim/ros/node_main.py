"""The `main()` every PLD node shares: init, spin, clean shutdown, exit 2 on bad parameters."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def freeze_startup_objects() -> None:
    """Take what start-up built out of the garbage collector's reach (`gc.freeze`).

    A node's models, compiled functions and message types are hundreds of thousands of objects that
    are never garbage; left in the oldest generation, every full collection walks all of them: a
    60-170 ms stall of every thread of the process (measured in the realtime graph, where it was the
    largest loop jitter). Call once the node (or the composed graph) is built.
    """
    gc.collect()
    gc.freeze()


def spin_node(make_node: Callable[[], Node], program: str, args: list[str] | None = None) -> int:
    """Run one node until Ctrl-C / shutdown; a ValueError while building it (parameters) exits 2."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        freeze_startup_objects()
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
