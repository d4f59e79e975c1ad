"""The VLA server node in-process: parameter mapping, readiness on the latched status, the instruction
topic, and bad observations (counted, dropped, warned about at most once a second) next to good ones."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

pytestmark = pytest.mark.ros

INSTRUCTION = "pick up the blue cube"
PROPRIO_NAMES = [f"p{i}" for i in range(15)]


def spin_until(executor, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.01)
    return True


def observation_msg(stamp_ns: int, size: int = 128, cameras: tuple[str, ...] = ("side", "wrist")):
    from pld_sim.ros.conversions import nanoseconds_to_time, observation_to_msg

    rng = np.random.default_rng(stamp_ns)
    images = {name: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for name in cameras}
    obs = {"images": images, "proprio": np.zeros(15, np.float32)}
    return observation_to_msg(obs, PROPRIO_NAMES, nanoseconds_to_time(stamp_ns), "base", episode_id=1)


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


# ---------------------------------------------------------------------- parameters


def test_every_config_field_is_a_read_only_parameter_and_overrides_map(context) -> None:
    from dataclasses import fields

    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_vla_server.ros.vla_server_node import config_from_parameters
    from pld_vla_server.server import VLAServerConfig

    overrides = [
        Parameter("backend", value="hold"),
        Parameter("backend_options", value='{"horizon": 6, "gripper": 1.0}'),
        Parameter("horizon", value=4),
        Parameter("instruction", value=INSTRUCTION),
        Parameter("warmup", value=False),
        Parameter("status_period_s", value=2),  # an int for a float field, as `-p status_period_s:=2` gives
    ]
    node = Node("params", context=context, parameter_overrides=overrides)
    try:
        cfg = config_from_parameters(node)
        assert cfg == VLAServerConfig(
            backend="hold",
            backend_options={"horizon": 6, "gripper": 1.0},
            horizon=4,
            instruction=INSTRUCTION,
            warmup=False,
            status_period_s=2.0,
        )
        for f in fields(VLAServerConfig):
            descriptor = node.describe_parameter(f.name)
            assert descriptor.read_only and descriptor.description, f.name
        assert node.get_parameter("device").value == "cpu" and node.get_parameter("checkpoint").value == ""
        assert not node.set_parameters([Parameter("backend", value="small_vla")])[0].successful
    finally:
        node.destroy_node()


def test_defaults_come_from_the_given_config(context) -> None:
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_vla_server.ros.vla_server_node import config_from_parameters
    from pld_vla_server.server import VLAServerConfig

    defaults = VLAServerConfig(backend="hold", backend_options={"horizon": 3}, instruction="open the drawer")
    node = Node("params", context=context, parameter_overrides=[Parameter("horizon", value=2)])
    try:
        cfg = config_from_parameters(node, defaults)
        assert (cfg.backend, cfg.backend_options, cfg.instruction, cfg.horizon) == (
            "hold",
            {"horizon": 3},
            "open the drawer",
            2,
        )
        assert node.get_parameter("backend_options").value == '{"horizon": 3}'
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("parameter", "value", "error"),
    [
        ("backend", "gpt5", "ValueError"),
        ("backend_options", "{oops", "ValueError"),
        ("backend_options", '{"no_such_option": 1}', "ValueError"),
        ("device", "tpu", "ValueError"),
        ("horizon", "long", "Type"),
    ],
)
def test_invalid_parameters_fail_at_construction(context, parameter: str, value, error: str) -> None:
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_vla_server.ros.vla_server_node import config_from_parameters

    overrides = [Parameter("backend", value="hold"), Parameter(parameter, value=value)]
    node = Node("params", context=context, parameter_overrides=overrides)
    try:
        with pytest.raises(Exception) as excinfo:
            config_from_parameters(node)
        assert error in type(excinfo.value).__name__
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------- node graph


class Client:
    """Test-side peer: publishes observations and instructions, keeps every chunk, status and latency."""

    def __init__(self, context, executor) -> None:
        from rclpy.node import Node
        from std_msgs.msg import Float32, String

        from pld_interfaces.msg import ActionChunk, Observation
        from pld_vla_server.ros.vla_server_node import (
            CHUNK_QOS,
            INSTRUCTION_QOS,
            LATENCY_QOS,
            OBSERVATION_QOS,
            STATUS_QOS,
        )

        self.node = Node("vla_test_client", context=context)
        self.executor = executor
        executor.add_node(self.node)
        self.chunks: list = []
        self.status: list[dict] = []
        self.latencies: list[float] = []
        self.node.create_subscription(ActionChunk, "action_chunk", self.chunks.append, CHUNK_QOS)
        self.node.create_subscription(
            String, "vla_status", lambda m: self.status.append(json.loads(m.data)), STATUS_QOS
        )
        self.node.create_subscription(
            Float32, "inference_latency_ms", lambda m: self.latencies.append(m.data), LATENCY_QOS
        )
        self.observations = self.node.create_publisher(Observation, "observation", OBSERVATION_QOS)
        self.instructions = self.node.create_publisher(String, "instruction", INSTRUCTION_QOS)

    def instruct(self, text: str, server) -> None:
        from std_msgs.msg import String

        self.instructions.publish(String(data=text))
        assert spin_until(self.executor, lambda: server.server.instruction == text), (
            "instruction not received"
        )

    def send(self, msg, server) -> None:
        """Publish one observation and wait until the server has counted it."""
        received = server.server.status()["received"]
        self.observations.publish(msg)
        assert spin_until(self.executor, lambda: server.server.status()["received"] > received), (
            "not received"
        )


def test_bad_observations_are_counted_dropped_and_warned_once_while_good_ones_are_answered(
    context, capfd: pytest.CaptureFixture
) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from pld_vla_server.ros.conversions import action_chunk_from_msg
    from pld_vla_server.ros.vla_server_node import VLAServerNode

    executor = SingleThreadedExecutor(context=context)
    server = VLAServerNode(
        context=context,
        parameter_overrides=[
            Parameter("backend", value="hold"),
            Parameter("backend_options", value='{"horizon": 8}'),
            Parameter("status_period_s", value=0.1),
        ],
    )
    executor.add_node(server)
    client = Client(context, executor)
    try:
        assert spin_until(executor, lambda: client.status and client.status[-1]["ready"])
        assert spin_until(executor, lambda: client.observations.get_subscription_count() > 0)
        capfd.readouterr()

        client.send(observation_msg(10**9), server)  # no instruction yet
        assert server.server.status()["last_reject_reason"].startswith("observation.instruction")
        client.instruct(INSTRUCTION, server)
        client.send(observation_msg(2 * 10**9 + 5), server)
        assert spin_until(executor, lambda: len(client.chunks) == 1)
        chunk = client.chunks[0]
        assert stamp_of(chunk) == 2 * 10**9 + 5 and chunk.header.frame_id == "base"
        assert action_chunk_from_msg(chunk).actions.shape == (8, 7) and chunk.model_id == "hold"

        bad = []
        bad.append(observation_msg(3 * 10**9, size=64))  # wrong image size
        wrong_dtype = observation_msg(4 * 10**9)  # float32 pixels: not a uint8 encoding
        wrong_dtype.images[1] = Image(
            height=128, width=128, encoding="32FC3", step=128 * 12, data=bytes(128 * 128 * 12)
        )
        bad.append(wrong_dtype)
        bad.append(observation_msg(5 * 10**9, cameras=("side",)))  # missing camera
        truncated = observation_msg(6 * 10**9)
        truncated.images[0].data = bytes(100)
        bad.append(truncated)
        for msg in bad:
            client.send(msg, server)
        # a malformed bundle can only be built in-process (over DDS the arrays would be consistent)
        mismatched = observation_msg(7 * 10**9)
        mismatched.camera_names = ["side"]
        server.on_observation(mismatched)
        client.instruct("", server)  # an empty instruction on the topic: observations are refused
        client.send(observation_msg(8 * 10**9), server)

        status = server.server.status()
        assert status["rejected_invalid"] == 7 and status["processed"] == 1, status
        assert "instruction" in status["last_reject_reason"]
        assert spin_until(executor, lambda: client.status[-1]["rejected_invalid"] == 7)

        client.instruct("put the cube in the bowl", server)
        client.send(observation_msg(9 * 10**9), server)
        assert spin_until(executor, lambda: len(client.chunks) == 2), "the node stopped answering"
        assert stamp_of(client.chunks[1]) == 9 * 10**9
        assert spin_until(executor, lambda: len(client.latencies) == 2)
        assert all(0 <= value < 1000 for value in client.latencies)

        log = capfd.readouterr().err
        assert 1 <= log.count("dropped an invalid observation") <= 2, log  # at most once per second
    finally:
        executor.shutdown()
        client.node.destroy_node()
        server.destroy_node()


def test_node_comes_up_at_once_reports_not_ready_while_loading_and_takes_the_latched_instruction(
    context,
) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from pld_vla_server.backends.hold import HoldBackend, HoldConfig
    from pld_vla_server.ros.vla_server_node import VLAServerNode

    class SlowToWarmUp(HoldBackend):
        """Backend fake whose first (warm-up) prediction waits until the test releases it."""

        def __init__(self) -> None:
            super().__init__(HoldConfig())
            self.release = threading.Event()

        def predict(self, obs):
            assert self.release.wait(10)
            return super().predict(obs)

    executor = SingleThreadedExecutor(context=context)
    client = Client(context, executor)
    client.instructions.publish(String(data=INSTRUCTION))  # before the server exists: latched
    backend = SlowToWarmUp()
    started = time.monotonic()
    server = VLAServerNode(
        context=context, backend=backend, parameter_overrides=[Parameter("backend", value="hold")]
    )
    executor.add_node(server)
    try:
        assert time.monotonic() - started < 2.0, "the node waited for its backend"
        assert spin_until(executor, lambda: client.status and client.status[-1]["state"] == "loading")
        assert not client.status[-1]["ready"] and client.status[-1]["backend"] == "hold"
        assert spin_until(executor, lambda: server.server.instruction == INSTRUCTION), "latched instruction"
        assert spin_until(executor, lambda: client.observations.get_subscription_count() > 0)
        client.send(observation_msg(10**9), server)
        assert server.server.status()["dropped_not_ready"] == 1 and not client.chunks

        backend.release.set()
        assert spin_until(executor, lambda: client.status[-1]["ready"])
        assert client.status[-1]["model_id"] == "hold" and client.status[-1]["instruction"] == INSTRUCTION
        client.send(observation_msg(2 * 10**9), server)
        assert (
            spin_until(executor, lambda: len(client.chunks) == 1) and stamp_of(client.chunks[0]) == 2 * 10**9
        )
    finally:
        backend.release.set()
        executor.shutdown()
        client.node.destroy_node()
        server.destroy_node()
