"""Every pld_interfaces message crosses a process boundary over DDS with all its fields intact."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

PEER = Path(__file__).with_name("interface_peer.py")

pytestmark = pytest.mark.ros


def _load_peer_module():
    spec = importlib.util.spec_from_file_location("interface_peer", PEER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _image(height: int, width: int, seed: int):
    from sensor_msgs.msg import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels.tobytes())


def sample_messages() -> dict[str, object]:
    """One message of each type with every field set to a distinctive, float32-exact value."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from pld_interfaces.msg import (
        ActionChunk,
        ActionCommand,
        EpisodeEvent,
        Observation,
        PolicyParams,
        Reward,
    )

    header = Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="fr3_link0")
    return {
        "Observation": Observation(
            header=header,
            camera_names=["third_person", "wrist"],
            images=[_image(8, 6, 0), _image(4, 4, 1)],
            proprio_names=[f"joint{i}_pos" for i in range(1, 8)] + ["gripper_width"],
            proprio=[0.25 * i - 1.0 for i in range(8)],
            episode_id=7,
            step=42,
        ),
        "ActionChunk": ActionChunk(
            header=header,
            horizon=4,
            action_dim=7,
            actions=[0.125 * i for i in range(28)],
            features=[-0.5, 0.5, 2.0],
            model_id="small_vla/flow@abc123",
            inference_time_ms=12.5,
        ),
        "ActionCommand": ActionCommand(
            header=header,
            command=[0.01 * 2**-k for k in range(7)],
            base=[0.5] * 7,
            residual=[-0.25] * 7,
            provenance=ActionCommand.PROVENANCE_RESIDUAL,
            episode_id=3,
            step=99,
        ),
        "Reward": Reward(header=header, success_probability=0.875, success=True, stage=3),
        "EpisodeEvent": EpisodeEvent(
            header=header,
            episode_id=11,
            phase=EpisodeEvent.PHASE_DONE,
            t_base=37,
            step=180,
            success=True,
            end_reason=EpisodeEvent.END_SUCCESS,
            task="pick_cube",
            instruction="pick up the blue cube",
        ),
        "PolicyParams": PolicyParams(
            header=header,
            version=2**40 + 5,
            num_updates=123456,
            format="flax-msgpack",
            blob=bytes(range(256)) * 40,
        ),
    }


def test_each_message_type_round_trips_between_processes(ros_isolation: int) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    peer_module = _load_peer_module()
    messages = sample_messages()
    peer = subprocess.Popen(
        [sys.executable, str(PEER)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    rclpy.init(domain_id=ros_isolation)
    node = rclpy.create_node("interface_publisher")
    try:
        assert peer.stdout.readline().strip() == "READY", peer.stderr.read()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        publishers = {
            name: node.create_publisher(type(m), f"pld_test/{name}", qos) for name, m in messages.items()
        }
        deadline = time.monotonic() + 30
        while any(p.get_subscription_count() == 0 for p in publishers.values()):
            assert time.monotonic() < deadline, "the subscriber process was never discovered"
            time.sleep(0.05)
        for name, message in messages.items():
            publishers[name].publish(message)
        out, err = peer.communicate(timeout=60)
    finally:
        if peer.poll() is None:
            peer.kill()
        node.destroy_node()
        rclpy.shutdown()
    assert peer.returncode == 0, err
    received = {line["type"]: line["fields"] for line in map(json.loads, out.splitlines())}
    assert set(received) == set(messages)
    for name, message in messages.items():
        assert received[name] == peer_module.to_plain(message), f"{name} changed on the way"
    # spot-check that the comparison sees real content, not two empty dicts
    assert received["Observation"]["images"][1]["data"][:3] == list(
        np.asarray(messages["Observation"].images[1].data[:3])
    )
    assert received["PolicyParams"]["version"] == 2**40 + 5


def test_reset_service_and_run_episodes_action_between_processes(ros_isolation: int) -> None:
    import rclpy
    from rclpy.action import ActionClient

    from pld_interfaces.action import RunEpisodes
    from pld_interfaces.srv import Reset

    server = subprocess.Popen(
        [sys.executable, str(PEER.with_name("service_peer.py"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rclpy.init(domain_id=ros_isolation)
    node = rclpy.create_node("interface_client")
    try:
        assert server.stdout.readline().strip() == "READY", server.stderr.read()
        reset = node.create_client(Reset, "pld_test/reset")
        assert reset.wait_for_service(timeout_sec=30)
        future = reset.call_async(Reset.Request(task="gpu_insertion", seed=-1, stage=3))
        rclpy.spin_until_future_complete(node, future, timeout_sec=30)
        response = future.result()
        assert (response.success, response.seed, response.instruction) == (
            True,
            4242,
            "gpu_insertion stage 3",
        )

        client = ActionClient(node, RunEpisodes, "pld_test/run_episodes")
        assert client.wait_for_server(timeout_sec=30)
        feedback = []
        goal = RunEpisodes.Goal(
            task="pick_cube", stage=0, num_episodes=4, mode=RunEpisodes.Goal.MODE_EVAL, seed=7
        )
        send = client.send_goal_async(goal, feedback_callback=lambda f: feedback.append(f.feedback))
        rclpy.spin_until_future_complete(node, send, timeout_sec=30)
        result_future = send.result().get_result_async()
        rclpy.spin_until_future_complete(node, result_future, timeout_sec=30)
        result = result_future.result().result
        assert (result.episodes_run, result.successes, result.message) == (4, 2, "pick_cube mode 2")
        assert result.success_rate == pytest.approx(0.5)
        # feedback is best effort until the feedback topic is matched: check what arrived is consistent
        assert feedback and feedback[-1].episodes_done == 4
        assert all(f.step == 10 * f.episode_id and f.episodes_done == f.episode_id + 1 for f in feedback)
        assert server.wait(timeout=30) == 0, server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
        node.destroy_node()
        rclpy.shutdown()
