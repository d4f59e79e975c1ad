"""Faults of the PLD graph with every node in its own process, as `ros2 launch` starts them: the VLA server
killed mid-episode (the actor holds, the episode ends aborted, its bag is finalised and readable), restarted
(episodes run again), and SIGINT to every process (every bag written so far is readable)."""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ros

NAMESPACE = "faults"
IMAGE_SIZE = 64
TIME_LIMIT = 40
HOLD, ABORT, DONE = 3, 3, 3  # ActionCommand.PROVENANCE_HOLD, EpisodeEvent.END_ABORT, EpisodeEvent.PHASE_DONE


def start_graph(specs, extra: dict, tmp_path: Path, domain_id: int):
    """Every node in its own process, with `extra` parameters per node; and a context to watch them."""
    import rclpy

    from pld_franka_bringup.node_processes import NodeProcesses

    specs = [dataclasses.replace(s, overrides={**s.overrides, **extra.get(s.name, {})}) for s in specs]
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    try:
        return context, NodeProcesses(specs, tmp_path).start_all()
    except BaseException:
        rclpy.try_shutdown(context=context)
        raise


class Monitor:
    """Collects the graph's episode events and commands in the test process."""

    def __init__(self, context) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from pld_interfaces.msg import ActionCommand, EpisodeEvent

        self.node = Node("fault_monitor", namespace=NAMESPACE, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.events: list = []
        self.commands: list[tuple[float, int]] = []  # (wall time, provenance)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(EpisodeEvent, "episode", self.events.append, reliable)
        self.node.create_subscription(
            ActionCommand,
            "command",
            lambda m: self.commands.append((time.monotonic(), m.provenance)),
            reliable,
        )

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def done_events(self, end_reason: int | None = None) -> list:
        return [
            e for e in self.events if e.phase == DONE and (end_reason is None or e.end_reason == end_reason)
        ]


def test_a_killed_vla_server_aborts_the_episode_and_a_restarted_one_resumes_and_sigint_keeps_every_bag(
    ros_isolation: int, tmp_path: Path, tiny_vla
) -> None:
    import rclpy

    from pld_franka_bringup.graph import GraphArgs, build_graph
    from pld_residual.dataset.verify import verify_dataset

    dataset = tmp_path / "dataset"
    args = GraphArgs.from_strings(
        {"task": "pick_cube", "mode": "eval", "num_episodes": "50", "dataset_dir": str(dataset),
         "namespace": NAMESPACE}
    )  # fmt: skip
    vla = {**tiny_vla, "image_size": IMAGE_SIZE}
    extra = {
        "sim_node": {"image_size": IMAGE_SIZE},
        "vla_server": {"checkpoint": "", "backend_options": vla, "every_n_steps": 4},
        "episode_manager": {"time_limit_steps": TIME_LIMIT, "abort_after_hold_s": 1.0},
    }
    context, nodes = start_graph(build_graph(args), extra, tmp_path, ros_isolation)
    try:
        monitor = Monitor(context)
        # episodes wait for the VLA server to be ready: the first one runs with the base in command
        assert monitor.spin_until(lambda: len(monitor.done_events()) >= 1, 90), nodes.logs()
        assert monitor.done_events()[0].end_reason != ABORT, "an episode started before the VLA was ready"
        before = len(monitor.events)
        assert monitor.spin_until(lambda: any(e.phase in (1, 2) for e in monitor.events[before:]), 30)
        assert monitor.spin_until(lambda: sum(p != HOLD for _, p in monitor.commands[-5:]) >= 5, 30)

        nodes.send_signal("vla_server", signal.SIGKILL)  # mid-episode
        killed_at = time.monotonic()
        nodes.processes["vla_server"].wait(10)
        assert monitor.spin_until(lambda: any(t > killed_at and p == HOLD for t, p in monitor.commands), 10)
        first_hold = min(t for t, p in monitor.commands if t > killed_at and p == HOLD)
        # the old chunk's rows run out, then the watchdog (0.2 s wall per step in lockstep) makes holds
        assert first_hold - killed_at < 5.0
        assert monitor.spin_until(lambda: len(monitor.done_events(ABORT)) >= 1, 10), "no aborted episode"

        nodes.start("vla_server")
        aborts = len(monitor.done_events(ABORT))
        restarted = len(monitor.done_events())
        # episodes run to their time limit (or success) again once the new server answers
        assert monitor.spin_until(
            lambda: any(e.end_reason != ABORT for e in monitor.done_events()[restarted:]), 120
        ), nodes.logs()
        # no string of empty aborted episodes while the server was down: the manager waited for it
        assert 1 <= aborts <= 3, f"{aborts} aborted episodes during the outage"
    finally:
        killed = nodes.stop()  # SIGINT to every node, as ros2 launch on Ctrl-C
        rclpy.try_shutdown(context=context)
    assert not killed, f"{killed} did not stop on SIGINT"
    assert nodes.exited()["recorder"] == 0, nodes.logs()
    report = verify_dataset(dataset)
    assert not report["broken"], report
    index = json.loads((dataset / "index.json").read_text())
    records = index["episodes"] if isinstance(index, dict) else index
    reasons = {r["end_reason"] for r in records}
    assert "abort" in reasons and ({"time_limit", "success"} & reasons), reasons
    assert report["ok"] == len(records) >= 3


def test_the_actor_keeps_acting_with_its_last_parameters_when_the_learner_is_killed(
    ros_isolation: int, tmp_path: Path, tiny_vla
) -> None:
    import rclpy
    from std_msgs.msg import String

    from pld_franka_bringup.graph import GraphArgs, build_graph
    from pld_residual.ros.residual_actor_node import STATUS_QOS

    learn = tmp_path / "learn.yaml"
    learn.write_text(
        yaml.safe_dump(
            {"task": "pick_cube", "warmup_episodes": 1, "offline_episodes": 1, "critic_pretrain_steps": 0,
             "agent": {"hidden": 16, "batch_size": 8, "updates_per_call": 2, "residual_axes": [0, 1, 5]}}
        )
    )  # fmt: skip
    args = GraphArgs.from_strings(
        {
            "task": "pick_cube",
            "mode": "train",
            "num_episodes": "200",
            "record": "false",
            "namespace": NAMESPACE,
        }
    )
    vla = {**tiny_vla, "image_size": IMAGE_SIZE}
    extra = {
        "sim_node": {"image_size": IMAGE_SIZE},
        "vla_server": {"checkpoint": "", "backend_options": vla, "every_n_steps": 4},
        "episode_manager": {"time_limit_steps": 20, "warmup_episodes": 1, "probing_alpha": 0.2},
        "residual_actor": {"agent_options": {"hidden": 16, "residual_axes": [0, 1, 5]}},
        "learner": {
            "learn_config": str(learn),
            "out_dir": str(tmp_path / "learn"),
            "publish_every_updates": 2,
        },
    }
    context, nodes = start_graph(build_graph(args), extra, tmp_path, ros_isolation)
    try:
        monitor = Monitor(context)
        statuses: list[dict] = []
        monitor.node.create_subscription(
            String, "actor_status", lambda m: statuses.append(json.loads(m.data)), STATUS_QOS
        )
        residual = 1  # ActionCommand.PROVENANCE_RESIDUAL
        assert monitor.spin_until(
            lambda: (
                statuses
                and (statuses[-1]["params_version"] or 0) >= 2
                and any(p == residual for _, p in monitor.commands[-20:])
            ),
            120,
        ), nodes.logs()
        nodes.send_signal("learner", signal.SIGKILL)
        nodes.processes["learner"].wait(10)
        monitor.spin_until(lambda: False, 1.0)  # a publication already on its way still lands
        killed_at = time.monotonic()
        version = statuses[-1]["params_version"]
        episodes = len(monitor.done_events())
        # the graph goes on: more episodes, the residual still acting with the last parameters it got
        assert monitor.spin_until(lambda: len(monitor.done_events()) >= episodes + 2, 60), nodes.logs()
        after = [p for t, p in monitor.commands if t > killed_at]
        assert after.count(residual) > 0 and HOLD not in after
        assert statuses[-1]["params_version"] == version and statuses[-1]["policy_loaded"]
    finally:
        nodes.stop()
        rclpy.try_shutdown(context=context)
