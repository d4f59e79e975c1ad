"""Acceptance: the VLA server node in its own process answers observations over DDS, and `pld bench vla`.

The node runs under a robot namespace with the backend given on its command line (as a user starts it);
this process publishes the instruction on the latched topic and observations built from the input spec
the node reports on `vla_status`. Each observation must be answered by a chunk carrying its stamp; a bad
observation is counted on `vla_status` and the node keeps answering; SIGINT ends it cleanly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

NAMESPACE = "/franka"
INSTRUCTION = "pick up the blue cube"
# a small_vla small enough to build in a blink (the language encoder is the real MiniLM)
TINY_SMALL_VLA = {
    "head": "ar", "horizon": 5, "image_size": 32, "vision_size": 16, "vision_channels": [8, 8],
    "vision_dim": 16, "proprio_hidden": 16, "language_proj": 16, "trunk_hidden": 32, "feature_dim": 16,
    "ar_bins": 16, "ar_hidden": 32, "ar_embed": 16,
}  # fmt: skip
BACKENDS = {"hold": {"horizon": 6}, "small_vla": TINY_SMALL_VLA}


def stamp_ns(stamp) -> int:
    return stamp.sec * 10**9 + stamp.nanosec


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_server_process_answers_each_observation_with_its_stamp(
    ros_isolation: int, tmp_path: Path, backend: str
) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import String

    from pld_interfaces.msg import ActionChunk, Observation
    from pld_sim.ros.conversions import nanoseconds_to_time, observation_to_msg
    from pld_vla_server.ros.conversions import action_chunk_from_msg
    from pld_vla_server.ros.vla_server_node import CHUNK_QOS, INSTRUCTION_QOS, OBSERVATION_QOS, STATUS_QOS

    options = BACKENDS[backend]
    log_path = tmp_path / "vla_server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "pld_vla_server.ros.vla_server_node", "--ros-args",
             "-r", f"__ns:={NAMESPACE}", "-p", f"backend:={backend}",
             "-p", f"backend_options:='{json.dumps(options)}'", "-p", "status_period_s:=0.2"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_isolation)
    node = Node("vla_client", namespace=NAMESPACE, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    chunks: list[ActionChunk] = []
    status: list[dict] = []

    def spin_until(condition, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert server.poll() is None, f"server exited with {server.returncode}:\n{log_path.read_text()}"
            if time.monotonic() > deadline:
                return False
            executor.spin_once(timeout_sec=0.01)
        return True

    try:
        node.create_subscription(ActionChunk, "action_chunk", chunks.append, CHUNK_QOS)
        node.create_subscription(
            String, "vla_status", lambda m: status.append(json.loads(m.data)), STATUS_QOS
        )
        observations = node.create_publisher(Observation, "observation", OBSERVATION_QOS)
        node.create_publisher(String, "instruction", INSTRUCTION_QOS).publish(String(data=INSTRUCTION))
        ready = lambda: (  # noqa: E731
            bool(status)
            and status[-1]["ready"]
            and status[-1]["instruction"] == INSTRUCTION
            and observations.get_subscription_count() > 0
        )
        assert spin_until(ready, 90), f"server never became ready ({status[-1:]}):\n{log_path.read_text()}"
        spec = status[-1]["input_spec"]
        assert status[-1]["backend"] == backend and status[-1]["model_id"].startswith(backend)

        rng = np.random.default_rng(0)
        size = spec["image_size"]
        names = [f"p{i}" for i in range(spec["proprio_dim"])]

        def observation(stamp: int, image_size: int = size):
            images = {c: rng.integers(0, 256, (image_size, image_size, 3), np.uint8) for c in spec["cameras"]}
            obs = {"images": images, "proprio": rng.normal(size=len(names)).astype(np.float32) * 0.1}
            return observation_to_msg(obs, names, nanoseconds_to_time(stamp), "fr3_link0")

        stamps = [1_700_000_000_000_000_000 + k * 50_000_000 + 7 for k in range(5)]
        for k, stamp in enumerate(stamps):
            observations.publish(observation(stamp))
            assert spin_until(lambda k=k: len(chunks) > k, 30), f"no chunk for observation {k}"
        assert [stamp_ns(c.header.stamp) for c in chunks] == stamps
        horizon = options["horizon"]
        for chunk in chunks:
            assert chunk.header.frame_id == "fr3_link0" and chunk.model_id == status[-1]["model_id"]
            actions = action_chunk_from_msg(chunk).actions
            assert actions.shape == (horizon, 7) and np.all(np.isfinite(actions))
            assert chunk.inference_time_ms > 0

        observations.publish(observation(stamps[-1] + 1, image_size=size * 2))  # wrong image size
        assert spin_until(lambda: status[-1]["rejected_invalid"] == 1, 10), status[-1]
        assert "images" in status[-1]["last_reject_reason"]
        observations.publish(observation(stamps[-1] + 2))
        assert (
            spin_until(lambda: len(chunks) == 6, 30) and stamp_ns(chunks[-1].header.stamp) == stamps[-1] + 2
        )
        assert spin_until(lambda: status[-1]["processed"] == 6, 10), status[-1]
        assert status[-1]["failed"] == 0 and status[-1]["last_error"] == ""

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0, log_path.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_server_process_with_invalid_parameters_exits_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pld_vla_server.ros.vla_server_node", "--ros-args", "-p", "backend:=nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "unknown VLA backend 'nope'" in result.stderr, result.stderr


def test_bench_cli_prints_latencies_per_variant() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pld_residual.cli",
            "bench",
            "vla",
            "--json",
            "--backend",
            "hold",
            "--count",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == "hold" and report["count"] == 20
    entry = report["hold"]
    for key in ("chunk_latency_ms", "server_e2e_ms"):
        assert 0 < entry[f"{key}_median"] <= entry[f"{key}_p99"], (key, entry)
    assert entry["e2e_answered"] == 20 and entry["e2e_lost"] == 0
    # the round trip through DDS and the server cannot be faster than the backend alone
    assert entry["server_e2e_ms_median"] > entry["chunk_latency_ms_median"]
    assert entry["server_counters"]["processed"] == 20
