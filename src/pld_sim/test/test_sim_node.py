"""The sim node in-process: parameter mapping, bad commands (rejected, counted, arm held, log throttled),
lockstep stepping and the realtime timer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def spin_until(executor, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.02)
    return True


# ---------------------------------------------------------------------- parameters


def test_every_config_field_is_a_read_only_parameter_and_overrides_map(context) -> None:
    from dataclasses import fields

    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_sim.ros.sim_node import config_from_parameters
    from pld_sim.sim_driver import SimDriverConfig

    overrides = [
        Parameter("mode", value="realtime"),
        Parameter("task", value="pick_cube"),
        Parameter("seed", value=42),
        Parameter("image_size", value=32),
        Parameter("control_hz", value=10),  # an int for a float field, as `-p control_hz:=10` gives
        Parameter("command_timeout_s", value=0.25),
        Parameter("frame_id", value="fr3_link0"),
        Parameter("publish_clock", value=False),
    ]
    node = Node("params", context=context, parameter_overrides=overrides)
    try:
        cfg = config_from_parameters(node)
        assert cfg == SimDriverConfig(
            mode="realtime",
            seed=42,
            image_size=32,
            control_hz=10.0,
            command_timeout_s=0.25,
            frame_id="fr3_link0",
            publish_clock=False,
        )
        for f in fields(SimDriverConfig):
            descriptor = node.describe_parameter(f.name)
            assert descriptor.read_only and descriptor.description, f.name
        result = node.set_parameters([Parameter("mode", value="lockstep")])[0]
        assert not result.successful
    finally:
        node.destroy_node()


def test_defaults_come_from_the_given_config(context) -> None:
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_sim.ros.sim_node import config_from_parameters
    from pld_sim.sim_driver import SimDriverConfig

    node = Node("params", context=context, parameter_overrides=[Parameter("seed", value=9)])
    try:
        cfg = config_from_parameters(node, SimDriverConfig(image_size=48, mode="realtime"))
        assert (cfg.image_size, cfg.mode, cfg.seed) == (48, "realtime", 9)
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("parameter", "value", "error"),
    [("mode", "turbo", "ValueError"), ("control_hz", 30.0, "ValueError"), ("image_size", "big", "Type")],
)
def test_invalid_parameters_fail_at_construction(context, parameter: str, value, error: str) -> None:
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_sim.ros.sim_node import config_from_parameters

    node = Node("params", context=context, parameter_overrides=[Parameter(parameter, value=value)])
    try:
        with pytest.raises(Exception) as excinfo:
            config_from_parameters(node)
        assert error in type(excinfo.value).__name__
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------- lockstep graph


class Client:
    """Test-side peer: publishes commands, calls reset, keeps every observation and status it receives."""

    def __init__(self, context, executor) -> None:
        from rclpy.node import Node
        from std_msgs.msg import String

        from pld_interfaces.msg import ActionCommand, Observation
        from pld_interfaces.srv import Reset
        from pld_sim.ros.sim_node import COMMAND_QOS, OBSERVATION_QOS, STATUS_QOS

        self.node = Node("sim_test_client", context=context)
        self.executor = executor
        executor.add_node(self.node)
        self.observations: list = []
        self.status: list[dict] = []
        self.node.create_subscription(Observation, "observation", self.observations.append, OBSERVATION_QOS)
        self.node.create_subscription(
            String, "sim_status", lambda m: self.status.append(json.loads(m.data)), STATUS_QOS
        )
        self.commands = self.node.create_publisher(ActionCommand, "command", COMMAND_QOS)
        self.reset_client = self.node.create_client(Reset, "reset")

    def wait_connected(self) -> None:
        assert self.reset_client.wait_for_service(timeout_sec=10)
        assert spin_until(self.executor, lambda: self.commands.get_subscription_count() > 0)

    def reset(self, task: str = "", seed: int = -1, stage: int = 0):
        from pld_interfaces.srv import Reset

        n = len(self.observations)
        future = self.reset_client.call_async(Reset.Request(task=task, seed=seed, stage=stage))
        assert spin_until(self.executor, future.done)
        response = future.result()
        if response.success:
            assert spin_until(self.executor, lambda: len(self.observations) > n), "no observation after reset"
        return response

    def send(self, msg) -> object:
        """Publish a command and return the observation it produced."""
        n = len(self.observations)
        self.commands.publish(msg)
        assert spin_until(self.executor, lambda: len(self.observations) > n), "no observation for a command"
        return self.observations[-1]


def assert_stamps_increase(observations: list) -> None:
    stamps = [o.header.stamp.sec * 10**9 + o.header.stamp.nanosec for o in observations]
    assert np.all(np.diff(stamps) > 0), "sim time went back"


def close(executor, client: Client, sim) -> None:
    executor.shutdown()
    client.node.destroy_node()
    sim.destroy_node()


def tcp(observation) -> np.ndarray:
    return np.array(observation.proprio[:3], dtype=np.float64)


def test_bad_commands_are_rejected_counted_held_and_logged_once(
    context, capfd: pytest.CaptureFixture
) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pld_interfaces.msg import ActionCommand
    from pld_sim.ros.conversions import array_to_action_command
    from pld_sim.ros.sim_node import SimNode

    executor = SingleThreadedExecutor(context=context)
    sim = SimNode(
        context=context,
        parameter_overrides=[Parameter("image_size", value=32), Parameter("status_period_s", value=0.1)],
    )
    executor.add_node(sim)
    client = Client(context, executor)
    try:
        client.wait_connected()
        assert client.reset("pick_cube", 3).success
        for _ in range(3):  # settle
            start = client.send(array_to_action_command([0.0] * 6 + [-1.0]))
        start_step = start.step
        assert sim.cfg.image_size == 32 and [i.height for i in start.images] == [32, 32]  # overrides applied
        capfd.readouterr()

        nan = array_to_action_command([0.0, float("nan"), 0, 0, 0, 0, 0])
        after_nan = client.send(nan)
        # Over DDS the field is float32[7], so a wrong length can only reach the callback in-process.
        short = ActionCommand()
        short._command = np.zeros(6, np.float32)
        n = len(client.observations)
        sim.on_command(short)
        assert spin_until(executor, lambda: len(client.observations) > n)
        for _ in range(8):  # a flood of bad commands within one second
            client.send(array_to_action_command([float("inf")] * 7))

        stats = sim.driver.stats
        assert stats.rejected == 10 and stats.holds == 10 and stats.accepted == 3
        # in lockstep every command, rejected or not, advanced exactly one step and was answered
        assert after_nan.step == start_step + 1 and client.observations[-1].step == start_step + 10
        assert np.linalg.norm(tcp(client.observations[-1]) - tcp(start)) < 2e-3, (
            "arm moved on a rejected command"
        )
        assert spin_until(executor, lambda: client.status and client.status[-1]["rejected"] == 10)
        assert client.status[-1]["last_reject_reason"].startswith("action contains NaN or inf")
        log = capfd.readouterr().err
        assert 1 <= log.count("rejected command") <= 2, log  # at most once per second

        moved = client.send(array_to_action_command([0.02, 0, 0, 0, 0, 0, -1.0]))
        for _ in range(4):
            moved = client.send(array_to_action_command([0.02, 0, 0, 0, 0, 0, -1.0]))
        assert tcp(moved)[0] - tcp(start)[0] > 0.03, "valid commands must still move the arm"
        assert_stamps_increase(client.observations)
    finally:
        close(executor, client, sim)


def test_reset_service_reports_unknown_tasks_and_drawn_seeds(context) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pld_sim.ros.sim_node import SimNode

    executor = SingleThreadedExecutor(context=context)
    sim = SimNode(context=context, parameter_overrides=[Parameter("image_size", value=16)])
    executor.add_node(sim)
    client = Client(context, executor)
    try:
        client.wait_connected()
        bad = client.reset("stack_cups", 1)
        assert not bad.success and "known tasks" in bad.message and "pick_cube" in bad.message
        good = client.reset("pick_cube", -1)
        assert good.success and good.seed >= 0 and good.instruction == "pick up the blue cube"
        obs = client.observations[-1]
        assert (obs.episode_id, obs.step) == (1, 0)
        assert [image.height for image in obs.images] == [16, 16]
    finally:
        close(executor, client, sim)


# ---------------------------------------------------------------------- realtime


def test_realtime_steps_on_the_wall_clock_holds_without_commands_and_publishes_clock(context) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rosgraph_msgs.msg import Clock

    from pld_sim.ros.conversions import array_to_action_command
    from pld_sim.ros.sim_node import CLOCK_QOS, SimNode

    executor = SingleThreadedExecutor(context=context)
    sim = SimNode(
        context=context,
        parameter_overrides=[Parameter("mode", value="realtime"), Parameter("image_size", value=16)],
    )
    executor.add_node(sim)
    client = Client(context, executor)
    clocks: list = []
    client.node.create_subscription(Clock, "/clock", clocks.append, CLOCK_QOS)
    try:
        client.wait_connected()
        assert spin_until(executor, lambda: len(client.observations) >= 5)
        assert sim.driver.stats.holds >= 5 and sim.driver.stats.accepted == 0
        start = time.monotonic()
        steps = sim.driver.stats.steps
        spin_until(executor, lambda: False, timeout_s=0.5)
        rate = (sim.driver.stats.steps - steps) / (time.monotonic() - start)
        assert 5 < rate < 30, f"{rate:.1f} steps/s at 20 Hz"  # wall clock, not as fast as possible
        # a stream of commands drives the arm; each is reused only while fresh (100 ms)
        x0 = tcp(client.observations[-1])[0]
        for _ in range(8):
            client.commands.publish(array_to_action_command([0.01, 0, 0, 0, 0, 0, -1]))
            spin_until(executor, lambda: False, timeout_s=0.05)
        assert sim.driver.stats.accepted >= 4
        assert tcp(client.observations[-1])[0] - x0 > 0.02
        accepted = sim.driver.stats.accepted
        spin_until(executor, lambda: False, timeout_s=0.4)
        assert sim.driver.stats.accepted <= accepted + 2, "a stale command kept driving the arm"
        assert_stamps_increase(client.observations)
        first = client.observations[0].header.stamp
        assert clocks and clocks[-1].clock.sec * 10**9 + clocks[-1].clock.nanosec >= (
            first.sec * 10**9 + first.nanosec
        )
    finally:
        close(executor, client, sim)


def test_realtime_reset_publishes_its_first_observation_on_the_next_tick(context) -> None:
    """The stream keeps its grid across episodes: a reset's observation goes out at the next tick (after
    `publish_phase_s`), not from the service callback, and the episode then counts on from step 0."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pld_interfaces.srv import Reset
    from pld_sim.ros.sim_node import SimNode

    executor = SingleThreadedExecutor(context=context)
    sim = SimNode(
        context=context,
        parameter_overrides=[
            Parameter("mode", value="realtime"),
            Parameter("image_size", value=16),
            Parameter("publish_phase_s", value=0.02),
        ],
    )
    executor.add_node(sim)
    client = Client(context, executor)
    try:
        client.wait_connected()
        assert spin_until(executor, lambda: len(client.observations) >= 2)
        future = client.reset_client.call_async(Reset.Request(seed=4))
        assert spin_until(executor, future.done) and future.result().success
        assert all(o.episode_id == 0 for o in client.observations), "reset published from its callback"
        assert spin_until(executor, lambda: sum(o.episode_id == 1 for o in client.observations) >= 3)
        episode = [o for o in client.observations if o.episode_id == 1]
        assert [o.step for o in episode[:3]] == [0, 1, 2]
        assert_stamps_increase(client.observations)
    finally:
        close(executor, client, sim)
