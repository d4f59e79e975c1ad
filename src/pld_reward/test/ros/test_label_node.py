"""The label node in-process: observations stored with the label set through `~/mark_success`, shards
written by `~/end_episode` (path in the reply) and read back, `~/discard_episode`, invalid frames counted,
parameters mapped to LabelNodeConfig, and the keyboard option without a terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

CAMERAS = ("side", "wrist")
SIZE = 32


def spin_until(executor, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.01)
    return True


class Client:
    """Test-side peer: publishes observations one by one (each waited for) and calls the services."""

    def __init__(self, context, executor, label_node) -> None:
        from rclpy.node import Node
        from std_msgs.msg import String
        from std_srvs.srv import SetBool, Trigger

        from pld_interfaces.msg import Observation
        from pld_reward.ros.label_node import OBSERVATION_QOS, STATUS_QOS

        self.node = Node("label_test_client", context=context)
        self.executor, self.label_node = executor, label_node
        executor.add_node(self.node)
        self.status: list[dict] = []
        self.node.create_subscription(
            String, "label_status", lambda m: self.status.append(json.loads(m.data)), STATUS_QOS
        )
        self.publisher = self.node.create_publisher(Observation, "observation", OBSERVATION_QOS)
        self.mark_client = self.node.create_client(SetBool, "/label_node/mark_success")
        self.end_client = self.node.create_client(Trigger, "/label_node/end_episode")
        self.discard_client = self.node.create_client(Trigger, "/label_node/discard_episode")
        for client in (self.mark_client, self.end_client, self.discard_client):
            assert client.wait_for_service(timeout_sec=10)
        assert spin_until(executor, lambda: self.publisher.get_subscription_count() > 0 and bool(self.status))
        self.step = 0

    def send(self, value: int = 0, size: int = SIZE, cameras=CAMERAS, encoding: str = "rgb8") -> None:
        """Publish one observation and wait until the node has taken it (stored or refused)."""
        from pld_sim.ros.conversions import nanoseconds_to_time, observation_to_msg

        self.step += 1
        images = {name: np.full((size, size, 3), value, np.uint8) for name in cameras}
        obs = {"images": images, "proprio": np.full(2, value, np.float32)}
        msg = observation_to_msg(obs, ["a", "b"], nanoseconds_to_time(self.step), "base", step=self.step)
        for image in msg.images:
            image.encoding = encoding
        received = self.label_node.received
        self.publisher.publish(msg)
        assert spin_until(self.executor, lambda: self.label_node.received == received + 1)

    def call(self, client, request):
        future = client.call_async(request)
        assert spin_until(self.executor, future.done)
        return future.result()

    def mark(self, success: bool):
        from std_srvs.srv import SetBool

        return self.call(self.mark_client, SetBool.Request(data=success))

    def end(self):
        from std_srvs.srv import Trigger

        return self.call(self.end_client, Trigger.Request())

    def discard(self):
        from std_srvs.srv import Trigger

        return self.call(self.discard_client, Trigger.Request())

    def wait_status(self, condition: Callable[[dict], bool]) -> dict:
        assert spin_until(self.executor, lambda: bool(self.status) and condition(self.status[-1])), (
            f"status never matched; last {self.status[-1:]}"
        )
        return self.status[-1]


@pytest.fixture
def graph(context, tmp_path: Path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pld_reward.ros.label_node import LabelNode

    executor = SingleThreadedExecutor(context=context)
    overrides = [
        Parameter("task", value="pick_cube"),
        Parameter("out_dir", value=str(tmp_path / "human")),
        Parameter("image_size", value=SIZE),
        Parameter("input_size", value=16),
        Parameter("keyboard", value=True),  # stdin is not a terminal under pytest: warned, services only
    ]
    node = LabelNode(context=context, parameter_overrides=overrides)
    executor.add_node(node)
    client = Client(context, executor, node)
    try:
        yield node, client, tmp_path / "human"
    finally:
        executor.shutdown()
        client.node.destroy_node()
        node.destroy_node()


def test_services_produce_shards_with_the_labels(graph) -> None:
    from pld_reward.frames import read_episode
    from pld_reward.preprocess import frame_input

    node, client, out = graph
    assert node.keyboard_thread is None
    assert client.status[-1]["label"] == "failure" and client.status[-1]["out_dir"] == str(out)
    for value in (10, 20):
        client.send(value)
    reply = client.mark(True)
    assert reply.success and reply.message == "success from now on (2 frames)"
    for value in (30, 40, 50):
        client.send(value)
    assert client.mark(False).success
    client.send(60)
    status = client.wait_status(lambda s: s["frames"] == 6)
    assert (status["positives"], status["label"]) == (3, "failure")

    reply = client.end()
    assert reply.success and reply.message == str(out / "label_tool-pick_cube-0000000.npz")
    episode = read_episode(reply.message)
    np.testing.assert_array_equal(episode.labels, [0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(episode.steps, [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(episode.proprio[:, 0], [10, 20, 30, 40, 50, 60])
    cfg = node.classifier_cfg
    first = frame_input({name: np.full((SIZE, SIZE, 3), 10, np.uint8) for name in CAMERAS}, cfg)
    np.testing.assert_array_equal(episode.images[0], first)
    assert episode.images.shape == (6, 2, 16, 16, 3)
    assert (episode.meta["labeller"], episode.meta["task"], episode.meta["stage"]) == (
        "human",
        "pick_cube",
        0,
    )
    assert episode.meta["episode_success"] is False

    # the next episode starts as failure; discard drops it; an empty episode cannot be saved
    client.send(1)
    client.mark(True)
    client.send(2)
    reply = client.discard()
    assert reply.success and reply.message == "discarded 2 frame(s)"
    reply = client.end()
    assert not reply.success and "no frames" in reply.message
    client.mark(True)
    client.send(3)
    reply = client.end()
    assert reply.success and reply.message.endswith("-0000001.npz")
    np.testing.assert_array_equal(read_episode(reply.message).labels, [1])
    assert sorted(p.name for p in out.iterdir()) == [
        "label_tool-pick_cube-0000000.npz",
        "label_tool-pick_cube-0000001.npz",
    ]
    status = client.wait_status(lambda s: len(s["saved"]) == 2)
    assert status["discarded"] == 1 and status["frames"] == 0


def test_invalid_observations_are_not_stored(graph) -> None:
    from pld_reward.frames import read_episode

    _node, client, _out = graph
    client.send(5)
    client.send(5, size=16)
    client.send(5, cameras=("side",))
    client.send(5, encoding="bgr8")
    client.send(6)
    status = client.wait_status(lambda s: s["received"] == 5 and s["frames"] == 2)
    assert status["invalid"] == {"image_size": 1, "missing_camera": 1, "encoding": 1}
    np.testing.assert_array_equal(read_episode(client.end().message).proprio[:, 0], [5, 6])


def test_parameters_map_to_the_config(context) -> None:
    from dataclasses import fields

    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_reward.node_config import LabelNodeConfig
    from pld_reward.ros.label_node import config_from_parameters

    overrides = [
        Parameter("task", value="gpu_insertion_stage2"),
        Parameter("stage", value=2),
        Parameter("cameras", value=["top"]),
        Parameter("image_size", value=64),
        Parameter("input_size", value=32),
        Parameter("source", value="teleop"),
    ]
    node = Node("params", context=context, parameter_overrides=overrides)
    try:
        cfg = config_from_parameters(node)
        assert cfg == LabelNodeConfig(
            task="gpu_insertion_stage2",
            stage=2,
            cameras=["top"],
            image_size=64,
            input_size=32,
            source="teleop",
        )
        assert cfg.frames_dir == Path("runs/reward/gpu_insertion_stage2/frames/human")
        for f in fields(LabelNodeConfig):
            assert node.describe_parameter(f.name).read_only, f.name
    finally:
        node.destroy_node()
    node = Node("params", context=context, parameter_overrides=[Parameter("input_size", value=48)])
    try:
        with pytest.raises(ValueError, match="multiple of input_size"):
            config_from_parameters(node)
    finally:
        node.destroy_node()


def test_keyboard_on_a_terminal_labels_saves_and_quits(context, tmp_path: Path, monkeypatch) -> None:
    """keyboard:=true with a (pseudo-)terminal on stdin: keys reach the labeller, `q` shuts the node down."""
    import os
    import sys

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pld_reward.frames import read_episode
    from pld_reward.ros.label_node import LabelNode

    master, slave = os.openpty()
    terminal = os.fdopen(slave, "r")
    monkeypatch.setattr(sys, "stdin", terminal)
    overrides = [
        Parameter("out_dir", value=str(tmp_path)),
        Parameter("image_size", value=SIZE),
        Parameter("input_size", value=16),
        Parameter("keyboard", value=True),
    ]
    executor = SingleThreadedExecutor(context=context)
    node = LabelNode(context=context, parameter_overrides=overrides)
    executor.add_node(node)
    client = Client(context, executor, node)
    try:
        assert node.keyboard_thread is not None and node.keyboard_thread.is_alive()
        client.send(1)
        os.write(master, b"s\n")
        assert spin_until(executor, lambda: node.labeller.label)
        client.send(2)
        os.write(master, b"e\n")
        assert spin_until(executor, lambda: len(node.labeller.saved) == 1)
        np.testing.assert_array_equal(read_episode(node.labeller.saved[0]).labels, [0, 1])
        os.write(master, b"q\n")
        node.keyboard_thread.join(timeout=10)
        assert not node.keyboard_thread.is_alive() and not context.ok()
    finally:
        executor.shutdown()
        client.node.destroy_node()
        node.destroy_node()
        terminal.close()
        os.close(master)
