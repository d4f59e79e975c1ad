"""`spin_node`: a stop by shutdown is a clean exit (0), whichever error rclpy raises on the way out; an
error while the context is still valid is a real failure and propagates."""

from __future__ import annotations

import pytest


def make_node(shutdown_first: bool):
    import rclpy
    from rclpy.node import Node

    def factory() -> Node:
        node = Node("spin_node_test")

        def tick() -> None:
            if shutdown_first:
                rclpy.shutdown()  # as rclpy's SIGINT handler does, possibly mid-spin
            raise RuntimeError("failed to initialize wait set: the given context is not valid")

        node.create_timer(0.01, tick)
        return node

    return factory


def test_an_error_after_shutdown_is_a_clean_stop() -> None:
    from pld_sim.ros.node_main import spin_node

    assert spin_node(make_node(shutdown_first=True), "test") == 0


def test_an_error_while_running_propagates() -> None:
    from pld_sim.ros.node_main import spin_node

    with pytest.raises(RuntimeError, match="wait set"):
        spin_node(make_node(shutdown_first=False), "test")


def test_start_up_objects_are_frozen_out_of_the_collector_before_spinning() -> None:
    """A full collection walking the node's models stalled the realtime loop; spin_node freezes them."""
    import gc

    import rclpy
    from rclpy.node import Node

    from pld_sim.ros.node_main import spin_node

    frozen: list[int] = []

    def factory() -> Node:
        node = Node("spin_node_freeze_test")

        def tick() -> None:
            frozen.append(gc.get_freeze_count())
            rclpy.shutdown()

        node.create_timer(0.01, tick)
        return node

    gc.unfreeze()
    try:
        assert spin_node(factory, "test") == 0
    finally:
        gc.unfreeze()  # this process goes on running tests
    assert frozen and frozen[0] > 1000
