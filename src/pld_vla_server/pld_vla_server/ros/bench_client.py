"""The DDS half of `pld bench vla`: a VLA server node in a child process, timed from this process.

The client publishes an `Observation`, waits for the `ActionChunk` whose stamp equals the observation's,
then publishes the next (one observation in flight, so the time measured is one round trip through
DDS, conversion, the server's queue and the backend, not queueing behind earlier observations).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from pld_interfaces.msg import ActionChunk as ActionChunkMsg
from pld_interfaces.msg import Observation
from pld_sim.ros.conversions import nanoseconds_to_time, observation_to_msg, time_to_nanoseconds
from pld_vla_server.ros.vla_server_node import CHUNK_QOS, INSTRUCTION_QOS, OBSERVATION_QOS, STATUS_QOS
from pld_vla_server.types import InputSpec


@dataclass
class E2EResult:
    """Round-trip times of answered observations, and what else happened."""

    e2e_ms: list[float] = field(default_factory=list)
    server_inference_ms: list[float] = field(default_factory=list)
    lost: int = 0  # observations not answered within the timeout
    startup_s: float = 0.0  # process start -> status ready
    status: dict[str, Any] = field(default_factory=dict)


def server_command(namespace: str, parameters: dict[str, Any]) -> list[str]:
    """Command line of a server node; string values are YAML-quoted (JSON options contain ':' and '{')."""
    command = [
        sys.executable,
        "-m",
        "pld_vla_server.ros.vla_server_node",
        "--ros-args",
        "-r",
        f"__ns:={namespace}",
    ]
    for name, value in parameters.items():
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, str):
            text = "'" + value.replace("'", "''") + "'"
        else:
            text = str(value)
        command += ["-p", f"{name}:={text}"]
    return command


def run_e2e(
    parameters: dict[str, Any],
    spec: InputSpec,
    *,
    count: int,
    seconds: float,
    instruction: str = "pick up the blue cube",
    startup_timeout_s: float = 180.0,
    answer_timeout_s: float = 10.0,
    seed: int = 0,
) -> E2EResult:
    """Start a server with `parameters`, send up to `count` observations (within `seconds`), time them."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # design.md §6: never multicast out
    namespace = f"/pld_bench_vla_{os.getpid()}"
    result = E2EResult()
    log = tempfile.NamedTemporaryFile(prefix="pld-bench-vla-", suffix=".log", delete=False)  # noqa: SIM115
    log_path = Path(log.name)
    started = time.monotonic()
    server = subprocess.Popen(server_command(namespace, parameters), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node("vla_bench_client", namespace=namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    chunks: dict[int, tuple[float, ActionChunkMsg]] = {}

    def on_chunk(msg: ActionChunkMsg) -> None:
        chunks[time_to_nanoseconds(msg.header.stamp)] = (time.perf_counter(), msg)

    def on_status(msg: String) -> None:
        result.status = json.loads(msg.data)

    def spin_until(condition, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if server.poll() is not None:
                raise RuntimeError(
                    f"VLA server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                return False
            executor.spin_once(timeout_sec=0.005)
        return True

    try:
        node.create_subscription(ActionChunkMsg, "action_chunk", on_chunk, CHUNK_QOS)
        node.create_subscription(String, "vla_status", on_status, STATUS_QOS)
        observations = node.create_publisher(Observation, "observation", OBSERVATION_QOS)
        node.create_publisher(String, "instruction", INSTRUCTION_QOS).publish(String(data=instruction))
        ready = lambda: (  # noqa: E731
            result.status.get("ready") is True
            and result.status.get("instruction") == instruction
            and observations.get_subscription_count() > 0
        )
        if not spin_until(ready, startup_timeout_s):
            raise RuntimeError(
                f"VLA server not ready after {startup_timeout_s:.0f} s (status {result.status}):\n"
                f"{log_path.read_text()[-3000:]}"
            )
        result.startup_s = time.monotonic() - started

        rng = np.random.default_rng(seed)
        images = {
            name: rng.integers(0, 256, (spec.image_size, spec.image_size, 3), dtype=np.uint8)
            for name in spec.cameras
        }
        proprio = rng.normal(size=spec.proprio_dim).astype(np.float32) * 0.1
        names = [f"proprio_{i}" for i in range(spec.proprio_dim)]
        msg = observation_to_msg(
            {"images": images, "proprio": proprio}, names, nanoseconds_to_time(0), "base"
        )
        deadline = time.monotonic() + seconds
        for step in range(count):
            if time.monotonic() > deadline:
                break
            stamp_ns = time.time_ns()
            msg.header.stamp = nanoseconds_to_time(stamp_ns)
            msg.step = step
            sent = time.perf_counter()
            observations.publish(msg)
            if spin_until(lambda s=stamp_ns: s in chunks, answer_timeout_s):
                received, chunk = chunks.pop(stamp_ns)
                result.e2e_ms.append((received - sent) * 1e3)
                result.server_inference_ms.append(float(chunk.inference_time_ms))
            else:
                result.lost += 1
        # the periodic status that already counts every answered observation
        spin_until(lambda: result.status.get("processed", 0) >= len(result.e2e_ms), 5.0)
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        log_path.unlink(missing_ok=True)
    return result
