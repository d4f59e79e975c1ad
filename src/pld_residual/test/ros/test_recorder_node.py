"""The recorder node in-process and as its own process: parameter mapping, a synthetic episode published
on the namespace's topics and read back from its bag (every message decoded) with its index record,
malformed bytes, NaN commands and wrong types counted without a crash, `destroy_node()` mid-episode and
SIGINT to the process both leaving a finished, readable bag."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

NAMESPACE = "/franka"
CAMERA = "side"
PROPRIO_NAMES = ["tcp_x", "tcp_y", "gripper_width"]
JOINT_NAMES = ["joint1", "joint2"]
INSTRUCTION = "pick up the red cube"
STEP_NS = 50_000_000


def spin_until(executor, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.01)
    return True


def spin_for(executor, seconds: float) -> None:
    spin_until(executor, lambda: False, seconds)


def image(step: int) -> np.ndarray:
    return np.random.default_rng(step).integers(0, 256, (4, 6, 3), dtype=np.uint8)


def proprio(step: int) -> np.ndarray:
    return np.array([step, -step, 0.04], np.float32)


def base_action(step: int) -> np.ndarray:
    return np.full(7, 0.01 * (step + 1), np.float32)


class Peer:
    """Test-side graph: publishes what the sim node, actor, reward source and episode manager would, and
    keeps every `recorder_status` it receives."""

    def __init__(self, context, executor) -> None:
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import String

        from pld_interfaces.msg import ActionCommand, EpisodeEvent, Observation, Reward
        from pld_residual.ros.recorder_node import EPISODE_QOS, STATUS_QOS

        self.node = Node("recorder_test_peer", namespace=NAMESPACE, context=context)
        self.executor = executor
        executor.add_node(self.node)
        deep = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # nothing overwritten unsent
        self.observation = self.node.create_publisher(Observation, "observation", deep)
        self.joints = self.node.create_publisher(JointState, "joint_states", deep)
        self.camera = self.node.create_publisher(Image, f"camera/{CAMERA}/image_raw", qos_profile_sensor_data)
        self.command = self.node.create_publisher(ActionCommand, "command", deep)
        self.reward = self.node.create_publisher(Reward, "reward", deep)
        self.episode = self.node.create_publisher(EpisodeEvent, "episode", EPISODE_QOS)
        self.status: list[dict] = []
        self.node.create_subscription(
            String, "recorder_status", lambda m: self.status.append(json.loads(m.data)), STATUS_QOS
        )

    def wait_connected(self, cameras: bool = False) -> None:
        pubs = [self.observation, self.joints, self.command, self.reward, self.episode]
        pubs += [self.camera] if cameras else []
        assert spin_until(self.executor, lambda: all(p.get_subscription_count() > 0 for p in pubs), 20)
        # a writer can see the reader before the reader has matched the writer (discovery is not
        # symmetric): the first messages would be lost, so give the other side a moment
        spin_for(self.executor, 0.5)

    def wait_status(self, condition: Callable[[dict], bool], timeout_s: float = 10.0) -> dict:
        assert spin_until(
            self.executor, lambda: bool(self.status) and condition(self.status[-1]), timeout_s
        ), f"recorder_status never matched; last {self.status[-1:]}"
        return self.status[-1]

    def settle(self) -> None:
        spin_for(self.executor, 0.03)

    def publish_observation(self, step: int, stamp: int, episode_id: int) -> None:
        from pld_sim.ros.conversions import joint_state_to_msg, nanoseconds_to_time, observation_to_msg

        time_msg = nanoseconds_to_time(stamp)
        msg = observation_to_msg(
            {"proprio": proprio(step), "images": {CAMERA: image(step)}},
            PROPRIO_NAMES,
            time_msg,
            "base",
            episode_id,
            step,
        )
        self.camera.publish(msg.images[0])
        self.joints.publish(joint_state_to_msg(JOINT_NAMES, [0.1 * step, 0.2], stamp=time_msg))
        self.observation.publish(msg)

    def publish_command(self, step: int, stamp: int, episode_id: int, residual: bool, value=None) -> None:
        from pld_sim.ros.conversions import array_to_action_command, nanoseconds_to_time

        base = base_action(step)
        self.command.publish(
            array_to_action_command(
                base if value is None else np.full(7, value),
                base=base,
                provenance=int(residual),
                episode_id=episode_id,
                step=step,
                stamp=nanoseconds_to_time(stamp),
            )
        )

    def publish_reward(self, stamp: int, probability: float, success: bool) -> None:
        from pld_interfaces.msg import Reward
        from pld_sim.ros.conversions import nanoseconds_to_time

        msg = Reward(success_probability=probability, success=success)
        msg.header.stamp = nanoseconds_to_time(stamp)
        self.reward.publish(msg)

    def publish_event(self, episode_id: int, phase: int, step: int, stamp: int, **kw) -> None:
        from pld_interfaces.msg import EpisodeEvent
        from pld_sim.ros.conversions import nanoseconds_to_time

        fields = dict(
            t_base=2, seed=7, success=False, end_reason=0, task="pick_cube", instruction=INSTRUCTION
        )
        fields.update(kw)
        msg = EpisodeEvent(episode_id=episode_id, phase=phase, step=step, **fields)
        msg.header.stamp = nanoseconds_to_time(stamp)
        self.episode.publish(msg)

    def play(
        self, episode_id: int, start: int, steps: int, t_base: int, done: bool = True, between=None
    ) -> None:
        """One episode as a lockstep graph publishes it; `between(step, stamp)` runs after each command."""
        kw = dict(t_base=t_base)
        self.publish_observation(0, start, episode_id)
        self.publish_event(episode_id, 0, 0, start, **kw)
        self.publish_event(episode_id, 1, 0, start, **kw)
        self.settle()
        for step in range(steps):
            stamp = start + step * STEP_NS
            if step == t_base:
                self.publish_event(episode_id, 2, step, stamp, **kw)
            self.publish_command(step, stamp, episode_id, residual=step >= t_base)
            if between is not None:
                between(step, stamp)
            self.publish_observation(step + 1, stamp + STEP_NS, episode_id)
            self.publish_reward(stamp + STEP_NS, 0.1 * step, step == steps - 1)
            self.settle()
        if done:
            end = start + steps * STEP_NS
            self.publish_event(episode_id, 3, steps, end, success=True, end_reason=1, **kw)
            self.settle()


def check_episode(bag: Path, steps: int) -> None:
    """The bag decodes completely and holds what `Peer.play` published."""
    from pld_residual.dataset.reader import read_episode, to_sft_episode

    arrays = read_episode(bag, decode_all=True)
    assert len(arrays) == steps and arrays.instruction == INSTRUCTION
    np.testing.assert_array_equal(arrays.command, np.stack([base_action(s) for s in range(steps)]))
    count = len(arrays.proprio)
    np.testing.assert_array_equal(arrays.proprio, np.stack([proprio(s) for s in range(count)]))
    np.testing.assert_array_equal(arrays.images[CAMERA], np.stack([image(s) for s in range(count)]))
    assert to_sft_episode(arrays).actions.shape == (steps, 7)


# ---------------------------------------------------------------------- parameters


def test_every_config_field_is_a_read_only_parameter_and_overrides_map(context, tmp_path: Path) -> None:
    from dataclasses import fields

    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_residual.recording.config import RecorderConfig
    from pld_residual.ros.recorder_node import config_from_parameters

    overrides = [
        Parameter("dataset_dir", value=str(tmp_path)),
        Parameter("source", value="pld"),
        Parameter("keep_failures", value=False),
        Parameter("finalize_grace_s", value=2),  # an int for a float field, as `-p finalize_grace_s:=2` gives
        Parameter("namespace_in_bag", value=True),
    ]
    node = Node("params", context=context, parameter_overrides=overrides)
    try:
        cfg = config_from_parameters(node, RecorderConfig(status_period_s=0.25))
        assert cfg == RecorderConfig(
            dataset_dir=str(tmp_path),
            source="pld",
            keep_failures=False,
            finalize_grace_s=2.0,
            namespace_in_bag=True,
            status_period_s=0.25,
        )
        for f in fields(RecorderConfig):
            descriptor = node.describe_parameter(f.name)
            assert descriptor.read_only and descriptor.description, f.name
        assert not node.set_parameters([Parameter("source", value="eval")])[0].successful
    finally:
        node.destroy_node()


def test_main_exits_2_on_invalid_parameters(capfd: pytest.CaptureFixture, tmp_path: Path) -> None:
    from pld_residual.ros.recorder_node import main

    args = ["--ros-args", "-p", f"dataset_dir:={tmp_path}", "-p", "finalize_grace_s:=-1.0"]
    assert main(args) == 2
    assert "recorder: RecorderConfig.finalize_grace_s" in capfd.readouterr().err


# ---------------------------------------------------------------------- node graph


def test_an_episode_on_the_wire_becomes_a_readable_indexed_bag(context, tmp_path: Path) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rosbags.rosbag2 import Reader

    from pld_residual.dataset.index import load_index
    from pld_residual.dataset.verify import verify_dataset
    from pld_residual.ros.recorder_node import RecorderNode

    root = tmp_path / "dataset"
    executor = SingleThreadedExecutor(context=context)
    recorder = RecorderNode(
        context=context,
        namespace=NAMESPACE,
        parameter_overrides=[
            Parameter("dataset_dir", value=str(root)),
            Parameter("source", value="eval"),
            Parameter("finalize_grace_s", value=0.3),
            Parameter("reorder_window_s", value=0.2),
            Parameter("status_period_s", value=0.1),
        ],
    )
    executor.add_node(recorder)
    peer = Peer(context, executor)
    destroyed = False
    try:
        peer.wait_connected()
        peer.observation.publish(b"\x00\x01\x00\x00 not an observation")  # raw bytes: no crash, counted
        peer.publish_observation(0, 10**9, episode_id=0)  # before any episode: names the cameras
        peer.wait_connected(cameras=True)
        assert recorder.cameras == [CAMERA]

        def misbehave(step: int, stamp: int) -> None:
            if step == 1:
                peer.command.publish(b"\x00\x01\x00\x00garbage")
                peer.publish_command(99, stamp, 1, residual=True, value=float("nan"))
                peer.reward.publish(b"\x00\x01")

        peer.play(episode_id=1, start=2 * 10**9, steps=4, t_base=2, between=misbehave)
        status = peer.wait_status(lambda s: s["episodes_written"] == 1)
        assert status["dropped"]["malformed"] == 3 and status["dropped"]["invalid_command"] == 1
        assert status["dropped"]["outside_episode"] >= 2  # the naming observation and its joint states
        (record,) = load_index(root)
        expected = dict(task="pick_cube", instruction=INSTRUCTION, seed=7, t_base=2, source="eval", length=4)
        assert {k: record[k] for k in expected} == expected
        assert record["success"] is True and record["end_reason"] == "success"
        assert record["provenance"] == {"base": 2, "residual": 2} and record["extra"]["graph_episode_id"] == 1
        check_episode(root / record["bag"], steps=4)
        with Reader(root / record["bag"]) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts["/observation"] == 5 and counts["/command"] == 4 and counts["/reward"] == 4
        assert counts["/joint_states"] == 5 and counts["/episode"] == 4 and counts["/instruction"] == 1
        assert 1 <= counts[f"/camera/{CAMERA}/image_raw"] <= 5  # best effort: ROS tools' copies

        # destroy_node (what Ctrl-C leads to) mid-episode finishes that bag as aborted; it reads back
        before = status["messages_written"] + status["pending"]
        peer.play(episode_id=2, start=5 * 10**9, steps=3, t_base=0, done=False)
        peer.wait_status(lambda s: s["messages_written"] + s["pending"] >= before + 4 + 4 + 3 + 3)
        recorder.destroy_node()
        destroyed = True
        first, second = load_index(root)
        assert first == record
        assert (second["success"], second["end_reason"], second["length"]) == (False, "shutdown", 3)
        check_episode(root / second["bag"], steps=3)
        assert verify_dataset(root)["ok"] == 2
    finally:
        executor.shutdown()
        peer.node.destroy_node()
        if not destroyed:
            recorder.destroy_node()


def test_sigint_to_the_recorder_process_leaves_a_readable_bag(context, tmp_path: Path) -> None:
    from rclpy.executors import SingleThreadedExecutor

    from pld_residual.dataset.index import load_index
    from pld_residual.dataset.verify import verify_dataset

    root = tmp_path / "dataset"
    log_path = tmp_path / "recorder.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pld_residual.ros.recorder_node", "--ros-args", "-r", f"__ns:={NAMESPACE}",
             "-p", f"dataset_dir:={root}", "-p", "status_period_s:=0.1", "-p", "reorder_window_s:=0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    executor = SingleThreadedExecutor(context=context)
    peer = Peer(context, executor)
    try:
        peer.wait_connected()
        peer.play(episode_id=3, start=3 * 10**9, steps=3, t_base=1, done=False)
        peer.wait_status(lambda s: s["messages_written"] + s["pending"] >= 4 + 4 + 3 + 3, timeout_s=15)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        executor.shutdown()
        peer.node.destroy_node()
    (record,) = load_index(root)
    assert (record["success"], record["end_reason"], record["t_base"]) == (False, "shutdown", 1)
    check_episode(root / record["bag"], steps=record["length"])
    assert verify_dataset(root)["ok"] == 1
    assert "written" in log_path.read_text()
