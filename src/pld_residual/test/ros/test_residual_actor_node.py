"""The residual actor node in-process: parameter mapping, the watchdog on stale chunks and observations,
versioned PolicyParams (newer applied, older ignored, NaN weights held and counted, bad blobs refused),
the e-stop service, and the 20 Hz loop's measured period and jitter (printed, loosely asserted)."""

from __future__ import annotations

import array
import json
import time
from collections.abc import Callable

import numpy as np
import pytest

pytestmark = pytest.mark.ros

AGENT = {"hidden": 16, "actor_layers": 1}
FEATURES = np.linspace(-1, 1, 5, dtype=np.float32)
PROPRIO = np.array([0.5, 0.0, 0.3, 1, 0, 0, 0, 0.04], np.float32)  # TCP well inside the default box
PROPRIO_NAMES = ["tcp_x", "tcp_y", "tcp_z", "tcp_qw", "tcp_qx", "tcp_qy", "tcp_qz", "gripper_width"]
BASE = np.array([0.004, 0.0, -0.002, 0.0, 0.0, 0.0, 1.0], np.float32)  # every chunk row
HORIZON = 50  # 2.5 s of rows: only the watchdog can make such a chunk stale in these tests


@pytest.fixture(scope="module")
def policy():
    """A real ResidualPolicy shaped like the node's (agent_options AGENT, features + proprio)."""
    from pld_residual.actor.config import ResidualActorConfig
    from pld_residual.agent.policy import ResidualPolicy

    return ResidualPolicy.create(
        ResidualActorConfig(agent_options=AGENT).agent_config(), FEATURES.size + PROPRIO.size
    )


def blob_filled(policy, value: float) -> bytes:
    """The policy's parameter blob with every weight set to `value` (NaN -> a NaN residual)."""
    import flax.serialization
    import jax

    tree = flax.serialization.msgpack_restore(policy.params_to_bytes())
    return flax.serialization.msgpack_serialize(jax.tree.map(lambda x: np.full_like(x, value), tree))


def expected_residual(policy, blob: bytes) -> np.ndarray:
    from pld_residual.agent.policy import ResidualPolicy

    other = ResidualPolicy(policy.config, policy.obs_dim, policy.params)
    other.load_bytes(blob)
    high = np.array([0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0])  # the policy sees normalised base actions
    return other.act(np.concatenate([FEATURES, PROPRIO]), np.clip(BASE / high, -1, 1))


def spin_until(executor, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.01)
    return True


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


# ---------------------------------------------------------------------- parameters


def test_every_config_field_is_a_read_only_parameter_and_overrides_map(context) -> None:
    from dataclasses import fields

    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_residual.actor.config import ResidualActorConfig
    from pld_residual.ros.residual_actor_node import config_from_parameters

    overrides = [
        Parameter("rate_hz", value=10),  # an int for a float field, as `-p rate_hz:=10` gives
        Parameter("watchdog_s", value=0.3),
        Parameter("max_delta_translation_m", value=0.01),
        Parameter("workspace_mode", value="reject"),
        Parameter("workspace_z_min", value=0.05),
        Parameter("xi", value=0.25),
        Parameter("residual_enabled", value=False),
        Parameter("params_topic_enabled", value=False),
        Parameter("agent_options", value='{"hidden": 16}'),
        Parameter("features_source", value="none"),
    ]
    node = Node("params", context=context, parameter_overrides=overrides)
    try:
        cfg = config_from_parameters(node)
        assert cfg == ResidualActorConfig(
            rate_hz=10.0,
            watchdog_s=0.3,
            max_delta_translation_m=0.01,
            workspace_mode="reject",
            workspace_z_min=0.05,
            xi=0.25,
            residual_enabled=False,
            params_topic_enabled=False,
            agent_options={"hidden": 16},
            features_source="none",
        )
        for f in fields(ResidualActorConfig):
            descriptor = node.describe_parameter(f.name)
            assert descriptor.read_only and descriptor.description, f.name
        assert (
            node.get_parameter("checkpoint").value == ""
            and node.get_parameter("initial_gripper").value == -1.0
        )
        assert not node.set_parameters([Parameter("xi", value=0.5)])[0].successful
    finally:
        node.destroy_node()


def test_defaults_come_from_the_given_config(context) -> None:
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_residual.actor.config import ResidualActorConfig
    from pld_residual.ros.residual_actor_node import config_from_parameters

    node = Node("params", context=context, parameter_overrides=[Parameter("xi", value=0.1)])
    try:
        cfg = config_from_parameters(node, ResidualActorConfig(watchdog_s=0.5, agent_options={"hidden": 8}))
        assert (cfg.watchdog_s, cfg.agent_options, cfg.xi) == (0.5, {"hidden": 8}, 0.1)
        assert node.get_parameter("agent_options").value == '{"hidden": 8}'
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("parameter", "value", "error"),
    [
        ("watchdog_s", 0.01, "ValueError"),
        ("workspace_mode", "bounce", "ValueError"),
        ("agent_options", '{"hidden_size": 3}', "ValueError"),
        ("checkpoint", "/no/such/policy", "ValueError"),
        ("rate_hz", "fast", "ValueError"),  # float fields are dynamically typed: the config refuses it
        ("seed", "zero", "Type"),
    ],
)
def test_invalid_parameters_fail_at_construction(context, parameter: str, value, error: str) -> None:
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_residual.ros.residual_actor_node import config_from_parameters

    node = Node("params", context=context, parameter_overrides=[Parameter(parameter, value=value)])
    try:
        with pytest.raises(Exception) as excinfo:
            config_from_parameters(node)
        assert error in type(excinfo.value).__name__
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------- node graph


class Client:
    """Test-side peer: feeds observations and chunks at 20 Hz, sends parameters, calls the e-stop and keeps
    every command (with its receipt time) and status it receives."""

    def __init__(self, context, executor) -> None:
        from rclpy.node import Node
        from std_msgs.msg import String
        from std_srvs.srv import SetBool

        from pld_interfaces.msg import ActionChunk, ActionCommand, Observation, PolicyParams
        from pld_residual.ros.residual_actor_node import (
            CHUNK_QOS,
            COMMAND_QOS,
            OBSERVATION_QOS,
            PARAMS_QOS,
            STATUS_QOS,
        )

        self.node = Node("actor_test_client", context=context)
        self.executor = executor
        executor.add_node(self.node)
        self.commands: list[tuple[object, float]] = []
        self.status: list[dict] = []
        self.node.create_subscription(
            ActionCommand, "command", lambda m: self.commands.append((m, time.monotonic())), COMMAND_QOS
        )
        self.node.create_subscription(
            String, "actor_status", lambda m: self.status.append(json.loads(m.data)), STATUS_QOS
        )
        self.observations = self.node.create_publisher(Observation, "observation", OBSERVATION_QOS)
        self.chunks = self.node.create_publisher(ActionChunk, "action_chunk", CHUNK_QOS)
        self.params = self.node.create_publisher(PolicyParams, "policy_params", PARAMS_QOS)
        self.estop_client = self.node.create_client(SetBool, "estop")
        self.feed_observations = True
        self.feed_chunks = True
        self.last_chunk_stamp_ns = 0
        self.last_observation_stamp_ns = 0
        self.node.create_timer(0.05, self._feed)

    def _feed(self) -> None:
        from std_msgs.msg import Header

        from pld_interfaces.msg import ActionChunk
        from pld_sim.ros.conversions import observation_to_msg

        stamp = self.node.get_clock().now().to_msg()
        if self.feed_observations:
            msg = observation_to_msg({"proprio": PROPRIO}, PROPRIO_NAMES, stamp, "base", episode_id=2, step=5)
            self.observations.publish(msg)
            self.last_observation_stamp_ns = stamp.sec * 10**9 + stamp.nanosec
        if self.feed_chunks:
            self.chunks.publish(
                ActionChunk(
                    header=Header(stamp=stamp, frame_id="base"),
                    horizon=HORIZON,
                    action_dim=7,
                    actions=array.array("f", np.tile(BASE, HORIZON).tobytes()),
                    features=array.array("f", FEATURES.tobytes()),
                    model_id="test",
                )
            )
            self.last_chunk_stamp_ns = stamp.sec * 10**9 + stamp.nanosec

    def wait_connected(self) -> None:
        assert self.estop_client.wait_for_service(timeout_sec=10)
        assert spin_until(
            self.executor,
            lambda: (
                self.observations.get_subscription_count() > 0 and self.chunks.get_subscription_count() > 0
            ),
        )

    def wait_for(self, provenance: int, count: int = 3, timeout_s: float = 10.0) -> list:
        """The next `count` consecutive commands with this provenance (newer than the call)."""
        start = len(self.commands)

        def done() -> bool:
            tail = [m for m, _ in self.commands[start:]][-count:]
            return len(tail) == count and all(m.provenance == provenance for m in tail)

        assert spin_until(self.executor, done, timeout_s), (
            f"no {count} commands with provenance {provenance}; got "
            f"{[m.provenance for m, _ in self.commands[start:]][-10:]}, status {self.status[-1:]}"
        )
        return [m for m, _ in self.commands[start:]][-count:]

    def wait_status(self, condition: Callable[[dict], bool]) -> dict:
        assert spin_until(self.executor, lambda: bool(self.status) and condition(self.status[-1])), (
            f"status never matched; last {self.status[-1:]}"
        )
        return self.status[-1]

    def send_params(self, version: int, blob: bytes, fmt: str = "flax-msgpack") -> None:
        from pld_interfaces.msg import PolicyParams

        self.params.publish(PolicyParams(version=version, num_updates=10 * version, format=fmt, blob=blob))

    def estop(self, engage: bool) -> None:
        from std_srvs.srv import SetBool

        future = self.estop_client.call_async(SetBool.Request(data=engage))
        assert spin_until(self.executor, future.done)
        assert future.result().success


@pytest.fixture
def graph(context):
    """The actor node (tiny agent shape, status every 0.1 s) and a client, in one executor."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pld_residual.ros.residual_actor_node import ResidualActorNode

    executor = SingleThreadedExecutor(context=context)
    actor = ResidualActorNode(
        context=context,
        parameter_overrides=[
            Parameter("agent_options", value=json.dumps(AGENT)),
            Parameter("status_period_s", value=0.1),
        ],
    )
    executor.add_node(actor)
    client = Client(context, executor)
    try:
        client.wait_connected()
        yield actor, client
    finally:
        executor.shutdown()
        client.node.destroy_node()
        actor.destroy_node()


def test_stale_chunk_or_observation_holds_within_the_watchdog(graph) -> None:
    from pld_interfaces.msg import ActionCommand

    _actor, client = graph
    commands = client.wait_for(ActionCommand.PROVENANCE_BASE)
    np.testing.assert_allclose(commands[-1].command, BASE, rtol=1e-6)  # no policy: the base passes through
    assert (commands[-1].episode_id, commands[-1].step, commands[-1].header.frame_id) == (2, 5, "base")
    assert client.wait_status(lambda s: s["ready"])["params_version"] is None

    before = client.status[-1]["counters"]  # startup ticks before the first inputs already held
    client.feed_chunks = False
    start = len(client.commands)
    spin_until(client.executor, lambda: False, timeout_s=0.1)  # let the last chunk arrive
    last_chunk = client.last_chunk_stamp_ns
    client.wait_for(ActionCommand.PROVENANCE_HOLD, count=1)
    provenances = [m.provenance for m, _ in client.commands[start:]]
    first_hold = provenances.index(ActionCommand.PROVENANCE_HOLD)
    assert first_hold > 0, "held before the watchdog time: the chunk itself was still fresh"
    held = client.commands[start + first_hold][0]
    switch_s = (stamp_ns(held) - last_chunk) * 1e-9
    print(f"\nstale chunk -> hold {switch_s * 1e3:.1f} ms after the last chunk's stamp (watchdog 200 ms)")
    assert 0.2 < switch_s <= 0.2 + 2 * 0.05
    np.testing.assert_array_equal(held.command, [0, 0, 0, 0, 0, 0, 1.0])  # gripper stays closed
    status = client.wait_status(lambda s: s["counters"]["stale_chunk"] > before["stale_chunk"])
    assert not status["ready"] and status["last_interventions"] == ["stale_chunk"]

    client.feed_chunks = True
    client.wait_for(ActionCommand.PROVENANCE_BASE)
    client.feed_observations = False
    spin_until(client.executor, lambda: False, timeout_s=0.1)
    held = client.wait_for(ActionCommand.PROVENANCE_HOLD, count=1)[0]
    switch_s = (stamp_ns(held) - client.last_observation_stamp_ns) * 1e-9
    print(f"stale observation -> hold {switch_s * 1e3:.1f} ms after the last observation's stamp")
    assert 0.2 < switch_s <= 0.2 + 2 * 0.05
    status = client.wait_status(lambda s: s["counters"]["stale_observation"] > before["stale_observation"])
    assert status["last_interventions"] == ["stale_observation"]


def test_policy_params_newer_applied_older_ignored_nan_held_bad_refused_and_estop(graph, policy) -> None:
    from pld_interfaces.msg import ActionCommand

    actor, client = graph
    client.wait_for(ActionCommand.PROVENANCE_BASE)

    blob2 = blob_filled(policy, 0.05)
    residual2 = expected_residual(policy, blob2)
    client.send_params(2, blob2)
    client.wait_status(lambda s: s["params_version"] == 2)
    command = client.wait_for(ActionCommand.PROVENANCE_RESIDUAL)[-1]
    np.testing.assert_allclose(command.residual, residual2, rtol=1e-5)
    high = np.array([0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0])  # combined in the normalised space, then scaled
    combined = high * np.clip(BASE / high + 0.5 * residual2, -1, 1)
    np.testing.assert_allclose(command.command, combined, rtol=1e-5)

    blob1 = blob_filled(policy, -0.2)
    assert not np.allclose(expected_residual(policy, blob1), residual2)
    client.send_params(1, blob1)  # older: ignored, the actions stay those of version 2
    status = client.wait_status(lambda s: s["counters"]["params_ignored"] == 1)
    assert status["params_version"] == 2 and status["params_num_updates"] == 20
    np.testing.assert_allclose(
        client.wait_for(ActionCommand.PROVENANCE_RESIDUAL)[-1].residual, residual2, rtol=1e-5
    )

    client.estop(True)
    held = client.wait_for(ActionCommand.PROVENANCE_HOLD)[-1]
    np.testing.assert_array_equal(held.command, [0, 0, 0, 0, 0, 0, command.command[6]])
    status = client.wait_status(lambda s: s["estop"] and s["counters"]["estop"] > 0)
    assert status["counters"]["estop_engagements"] == 1
    client.estop(False)
    client.wait_for(ActionCommand.PROVENANCE_RESIDUAL)

    client.send_params(3, blob_filled(policy, np.nan))  # NaN weights: NaN residual at the policy boundary
    client.wait_status(lambda s: s["params_version"] == 3)
    held = client.wait_for(ActionCommand.PROVENANCE_HOLD)
    assert all(not np.any(m.residual) for m in held)  # the NaN residual did not act
    nan_holds = client.wait_status(lambda s: s["counters"]["nonfinite_residual"] >= 3)["counters"]
    assert nan_holds["holds"] >= nan_holds["nonfinite_residual"]

    client.send_params(4, b"\x00not a parameter blob")  # refused; version 3 stays
    status = client.wait_status(lambda s: s["counters"]["params_rejected"] == 1)
    assert status["params_version"] == 3 and "rejected" in status["last_error"]
    client.send_params(5, blob2)  # a good, newer version recovers
    command = client.wait_for(ActionCommand.PROVENANCE_RESIDUAL)[-1]
    np.testing.assert_allclose(command.residual, residual2, rtol=1e-5)
    assert actor.actor.params_version == 5


def test_loop_runs_at_20_hz_with_measured_jitter(graph) -> None:
    from pld_interfaces.msg import ActionCommand

    _actor, client = graph
    client.wait_for(ActionCommand.PROVENANCE_BASE)
    start = len(client.commands)
    spin_until(client.executor, lambda: False, timeout_s=3.0)
    window = client.commands[start:]
    stamps = np.array([stamp_ns(m) for m, _ in window]) * 1e-9
    received = np.array([t for _, t in window])
    status = client.wait_status(lambda s: s["loop"].get("window", 0) > 20)["loop"]
    report = []
    for name, times in (("command stamps", stamps), ("receipt times", received)):
        periods = np.diff(times)
        jitter = np.percentile(np.abs(periods - 0.05), 99)
        report.append(
            f"{name}: {len(periods)} periods, mean {periods.mean() * 1e3:.2f} ms, "
            f"p99 |period - 50 ms| {jitter * 1e3:.2f} ms, max {periods.max() * 1e3:.1f} ms"
        )
    report.append(
        f"actor_status loop: mean {status['period_mean_ms']:.2f} ms, "
        f"jitter p99 {status['jitter_p99_ms']:.2f} ms, max {status['period_max_ms']:.1f} ms "
        f"over {status['window']} periods"
    )
    print("\n20 Hz loop over ~3 s: " + "; ".join(report))
    mean_period = np.diff(stamps).mean()
    assert 0.040 <= mean_period <= 0.060, f"mean period {mean_period * 1e3:.1f} ms"
    assert 0.040 <= status["period_mean_ms"] * 1e-3 <= 0.060


def test_a_checkpoint_is_loaded_at_start_and_acts_from_the_first_step(context, policy, tmp_path) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pld_interfaces.msg import ActionCommand
    from pld_residual.agent.policy import ResidualPolicy
    from pld_residual.ros.residual_actor_node import ResidualActorNode

    saved = ResidualPolicy(policy.config, policy.obs_dim, policy.params)
    blob = blob_filled(policy, 0.05)
    saved.load_bytes(blob)
    saved.save(tmp_path / "policy")
    executor = SingleThreadedExecutor(context=context)
    actor = ResidualActorNode(
        context=context,
        parameter_overrides=[
            Parameter("checkpoint", value=str(tmp_path / "policy")),
            Parameter("params_topic_enabled", value=False),
        ],
    )
    executor.add_node(actor)
    client = Client(context, executor)
    try:
        client.wait_connected()
        status = client.wait_status(lambda s: s["policy_loaded"])
        assert status["params_version"] == 0 and client.params.get_subscription_count() == 0
        command = client.wait_for(ActionCommand.PROVENANCE_RESIDUAL)[-1]
        np.testing.assert_allclose(command.residual, expected_residual(policy, blob), rtol=1e-5)
    finally:
        executor.shutdown()
        client.node.destroy_node()
        actor.destroy_node()


def test_main_exits_2_on_invalid_parameters(capfd: pytest.CaptureFixture) -> None:
    from pld_residual.ros.residual_actor_node import main

    assert main(["--ros-args", "-p", "watchdog_s:=0.01"]) == 2
    assert "residual_actor: ResidualActorConfig.watchdog_s" in capfd.readouterr().err


@pytest.mark.parametrize("wait_for_chunk", [True, False])
def test_observation_trigger_waits_for_a_chunk_or_holds_at_once(context, wait_for_chunk: bool) -> None:
    """Lockstep waits for the chunk that covers an observation; realtime (`wait_for_chunk` false) answers
    it at once, with a hold while no chunk has come, so a slow VLA never delays the loop."""
    from rclpy.parameter import Parameter

    from pld_residual.actor.safety import Intervention, Provenance
    from pld_residual.ros.residual_actor_node import ResidualActorNode
    from pld_sim.ros.conversions import nanoseconds_to_time, observation_to_msg

    actor = ResidualActorNode(
        context=context,
        parameter_overrides=[
            Parameter("trigger", value="observation"),
            Parameter("wait_for_chunk", value=wait_for_chunk),
        ],
    )
    try:
        stamp = nanoseconds_to_time(time.monotonic_ns())
        actor.on_observation(observation_to_msg({"proprio": PROPRIO}, PROPRIO_NAMES, stamp, "base", 1, 0))
        step = actor.actor.last_step
        if wait_for_chunk:
            assert step is None, "commanded before any chunk covered the observation"
        else:
            assert step is not None and step.provenance is Provenance.HOLD
            assert Intervention.STALE_CHUNK in step.interventions and step.step == 0
    finally:
        actor.destroy_node()
