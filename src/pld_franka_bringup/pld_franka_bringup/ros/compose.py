"""The launch graph in one process: every node of `graph.build_graph` on one executor, with
the same parameters as `ros2 launch` (the task YAML's section of each node plus the argument overrides).

For machines without `ros2 launch` (pip-only ROS) and for tests. Nodes are built in graph order and
destroyed in reverse; the recorder finalises an episode still open then as aborted.

A node class with `THREAD_AFFINE = True` (the sim node: its OpenGL context works only on the thread that
made it current) is built, spun and destroyed on a thread of its own with a single-threaded executor; the
others share one single-threaded executor. Single-threaded on purpose: polling rclpy's
MultiThreadedExecutor keeps rebuilding its wait set while a callback is in flight (a busy loop holding
the GIL: the graph ran 6x slower and the VLA's chunks came late enough to change episodes); the slow
work has threads of its own anyway (VLA inference, the learner's updates).

Once built, the start-up objects are frozen out of the garbage collector's walks
(`freeze_startup_objects`: a full collection stalled the realtime loop for up to 170 ms); `close`
unfreezes them, so a process that composes graph after graph (tests, the bench) does not keep them.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from pld_franka_bringup.graph import NodeSpec, import_ref, load_node_parameters
from pld_sim.ros.node_main import freeze_startup_objects


def parameter_overrides(values: dict[str, Any]) -> list[Parameter]:
    """YAML / override values -> rclpy Parameters (dicts travel as JSON strings, as ROS has no dict)."""
    params = []
    for name, value in values.items():
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        params.append(Parameter(name, value=value))
    return params


class ComposedGraph:
    """The nodes of a graph in one process (`with ComposedGraph(specs, context) as graph: ...`)."""

    def __init__(self, specs: Iterable[NodeSpec], context: Context) -> None:
        self.specs = list(specs)
        self.context = context
        self.executor = SingleThreadedExecutor(context=context)
        self.nodes: dict[str, Node] = {}
        self._threads: dict[str, _NodeThread] = {}
        try:
            for spec in self.specs:
                try:
                    node_class = import_ref(spec.node_class)
                except (ImportError, AttributeError) as exc:
                    raise ValueError(
                        f"node {spec.name} ({spec.node_class}) is not available: {exc}"
                    ) from None
                make = lambda cls=node_class, spec=spec: cls(  # noqa: E731
                    node_name=spec.name,
                    namespace=spec.namespace,
                    parameter_overrides=parameter_overrides(load_node_parameters(spec)),
                    context=context,
                )
                if getattr(node_class, "THREAD_AFFINE", False):
                    thread = _NodeThread(make, context, spec.name)
                    self._threads[spec.name] = thread
                    self.nodes[spec.name] = thread.start()
                else:
                    self.nodes[spec.name] = make()
                    self.executor.add_node(self.nodes[spec.name])
        except BaseException:
            self.close()
            raise
        freeze_startup_objects()

    def __enter__(self) -> ComposedGraph:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def spin_until(self, done: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Spin until `done()` (True) or the timeout (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not done():
            if deadline is not None and time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def close(self) -> None:
        """Destroy the nodes in reverse order (and let the collector reach what they built again)."""
        gc.unfreeze()
        for name in reversed(list(self.nodes)):
            node = self.nodes.pop(name)
            thread = self._threads.pop(name, None)
            if thread is not None:
                thread.stop()
                continue
            try:
                self.executor.remove_node(node)
            finally:
                node.destroy_node()
        self.executor.shutdown(timeout_sec=1.0)


class _NodeThread:
    """One node built, spun and destroyed on its own thread."""

    def __init__(self, make: Callable[[], Node], context: Context, name: str) -> None:
        self._make = make
        self._executor = SingleThreadedExecutor(context=context)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._node: Node | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"node-{name}", daemon=True)

    def start(self) -> Node:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._node is not None
        return self._node

    def _run(self) -> None:
        try:
            self._node = self._make()
            self._executor.add_node(self._node)
        except BaseException as exc:  # handed to start(), raised on the caller's thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                self._executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass
        finally:
            self._executor.remove_node(self._node)
            self._node.destroy_node()
            self._executor.shutdown(timeout_sec=1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)


def recording_idle(recorder: Node) -> bool:
    """Whether a recorder node has finished every episode it saw (no open bag, nothing queued)."""
    status = recorder.recorder.status()
    return status["episode"] is None and status["pending"] == 0


def init_context(args: list[str] | None = None, domain_id: int | None = None) -> Context:
    """A fresh rclpy context (not sys.argv: `pld run` parses its own arguments)."""
    context = Context()
    rclpy.init(args=args if args is not None else [], context=context, domain_id=domain_id)
    return context
