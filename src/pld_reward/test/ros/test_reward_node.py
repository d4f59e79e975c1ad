"""The reward node in-process with real tiny classifiers: parameter mapping, one Reward per valid observation
(stamped like it), invalid observations dropped and counted per reason, k-of-n debouncing and the reset
service, the run-time `stage` parameter (through the parameter service), and start-up failures."""

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
PROPRIO_NAMES = ["p0", "p1", "p2"]
TINY = {"image_size": SIZE, "input_size": 16, "encoder_widths": (4, 4, 4, 4), "head_hidden": 8}
# proprio vectors among which the untrained proprio classifier's most and least likely frames are picked
CANDIDATES = [np.array(p, np.float32) for p in ([0, 1, 0], [0, 0, 1], [1, 0, 0], [2, -1, 0], [-1, 0, 2])]


def spin_until(executor, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.01)
    return True


def save_classifier(directory: Path, thresholds: list[float], **changes) -> Path:
    from pld_reward import checkpoint
    from pld_reward.config import ClassifierConfig
    from pld_reward.model import init_params

    cfg = ClassifierConfig(**{**TINY, **changes})
    checkpoint.save(directory, cfg, init_params(cfg), {"thresholds": thresholds})
    return directory


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classifiers")
    return {
        "plain": save_classifier(root / "plain", [0.5]),
        "proprio": save_classifier(root / "proprio", [0.5], use_proprio=True, proprio_dim=3),
        "staged": save_classifier(root / "staged", [0.0, 1.1], tasks=("stage_a", "stage_b")),
    }


def high_and_low(checkpoint: Path) -> tuple[tuple[np.ndarray, float], tuple[np.ndarray, float]]:
    """(proprio, probability) of the candidates the classifier finds most and least likely successes."""
    from pld_reward.classifier import SuccessClassifier

    classifier = SuccessClassifier.load(checkpoint)
    scored = sorted(((classifier.probability(images(), p), i) for i, p in enumerate(CANDIDATES)))
    (p_low, low), (p_high, high) = scored[0], scored[-1]
    assert p_high > p_low + 1e-3, f"the untrained classifier hardly separates its inputs: {scored}"
    return (CANDIDATES[high], p_high), (CANDIDATES[low], p_low)


def images(value: int = 0, size: int = SIZE, cameras=CAMERAS) -> dict[str, np.ndarray]:
    return {name: np.full((size, size, 3), value, np.uint8) for name in cameras}


class Client:
    """Test-side peer: publishes observations, keeps every Reward and status, calls `reset` and sets
    parameters through the reward node's parameter service (as the stage machine does)."""

    def __init__(self, context, executor, namespace: str, remote: str) -> None:
        from rclpy.node import Node
        from rclpy.parameter_client import AsyncParameterClient
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from pld_interfaces.msg import Observation, Reward
        from pld_reward.ros.reward_node import OBSERVATION_QOS, REWARD_QOS, STATUS_QOS

        self.node = Node("reward_test_client", namespace=namespace, context=context)
        self.executor = executor
        executor.add_node(self.node)
        self.rewards: list = []
        self.status: list[dict] = []
        self.node.create_subscription(Reward, "reward", self.rewards.append, REWARD_QOS)
        self.node.create_subscription(
            String, "reward_status", lambda m: self.status.append(json.loads(m.data)), STATUS_QOS
        )
        self.publisher = self.node.create_publisher(Observation, "observation", OBSERVATION_QOS)
        self.reset_client = self.node.create_client(Trigger, f"{remote}/reset")
        self.params = AsyncParameterClient(self.node, remote)
        self.count = 0
        assert self.reset_client.wait_for_service(timeout_sec=10)
        assert spin_until(executor, lambda: self.publisher.get_subscription_count() > 0 and bool(self.status))

    def observation(self, image_set=None, proprio=None):
        from pld_sim.ros.conversions import nanoseconds_to_time, observation_to_msg

        self.count += 1
        obs = {"images": images() if image_set is None else image_set, "proprio": np.zeros(3, np.float32)}
        if proprio is not None:
            obs["proprio"] = np.asarray(proprio, np.float32)
        stamp = nanoseconds_to_time(self.count * 1_000_000_000 + 12345)
        return observation_to_msg(obs, PROPRIO_NAMES, stamp, "base", episode_id=1, step=self.count)

    def judge(self, msg):
        """Publish one observation and return the Reward that answers it."""
        self.publisher.publish(msg)
        found = spin_until(
            self.executor, lambda: any(r.header.stamp == msg.header.stamp for r in self.rewards)
        )
        assert found, f"no reward for the observation at {msg.header.stamp}; status {self.status[-1:]}"
        return next(r for r in self.rewards if r.header.stamp == msg.header.stamp)

    def successes(self, count: int, **kwargs) -> list[bool]:
        return [self.judge(self.observation(**kwargs)).success for _ in range(count)]

    def refused(self, msg, reason: str) -> dict:
        """Publish an invalid observation: its reason's counter goes up and no Reward answers it."""
        before = self.status[-1]["invalid"].get(reason, 0)
        self.publisher.publish(msg)
        status = self.wait_status(lambda s: s["invalid"].get(reason, 0) == before + 1)
        self.judge(self.observation())  # a later valid frame is answered: the invalid one had its turn
        assert all(r.header.stamp != msg.header.stamp for r in self.rewards)
        return status

    def wait_status(self, condition: Callable[[dict], bool]) -> dict:
        assert spin_until(self.executor, lambda: bool(self.status) and condition(self.status[-1])), (
            f"status never matched; last {self.status[-1:]}"
        )
        return self.status[-1]

    def reset(self) -> str:
        from std_srvs.srv import Trigger

        future = self.reset_client.call_async(Trigger.Request())
        assert spin_until(self.executor, future.done)
        assert future.result().success
        return future.result().message

    def set_parameter(self, name: str, value):
        from rclpy.parameter import Parameter

        assert self.params.wait_for_services(timeout_sec=10)
        future = self.params.set_parameters([Parameter(name, value=value)])
        assert spin_until(self.executor, future.done)
        return future.result().results[0]


@pytest.fixture
def make_graph(context):
    """make_graph(checkpoint, **parameters) -> (node, client), torn down after the test. Each graph in its
    own namespace, so that several in one test do not hear each other."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pld_reward.ros.reward_node import RewardNode

    executor = SingleThreadedExecutor(context=context)
    nodes = []

    def make(checkpoint: Path, **parameters):
        overrides = [Parameter("checkpoint", value=str(checkpoint))]
        overrides += [Parameter(name, value=value) for name, value in parameters.items()]
        namespace = f"/graph{len(nodes)}"
        node = RewardNode(context=context, namespace=namespace, parameter_overrides=overrides)
        nodes.append(node)
        executor.add_node(node)
        client = Client(context, executor, namespace, node.get_fully_qualified_name())
        nodes.append(client.node)
        return node, client

    yield make
    executor.shutdown()
    for node in nodes:
        node.destroy_node()


# ---------------------------------------------------------------------- parameters


def test_parameters_map_to_the_config_and_only_stage_is_writable(context) -> None:
    from dataclasses import fields

    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_reward.node_config import RewardNodeConfig
    from pld_reward.ros.reward_node import config_from_parameters

    overrides = [
        Parameter("checkpoint", value="runs/x"),
        Parameter("threshold", value=1),  # an int for the double, as `-p threshold:=1` gives
        Parameter("stage", value=2),
        Parameter("debounce_k", value=2),
        Parameter("debounce_n", value=3),
    ]
    node = Node("params", context=context, parameter_overrides=overrides)
    try:
        cfg = config_from_parameters(node)
        assert cfg == RewardNodeConfig(
            checkpoint="runs/x", threshold=1.0, stage=2, debounce_k=2, debounce_n=3
        )
        for f in fields(RewardNodeConfig):
            descriptor = node.describe_parameter(f.name)
            assert descriptor.description and descriptor.read_only == (f.name != "stage"), f.name
        assert not node.set_parameters([Parameter("threshold", value=0.5)])[0].successful
    finally:
        node.destroy_node()
    node = Node("params", context=context)
    try:
        with pytest.raises(ValueError, match="checkpoint: required"):
            config_from_parameters(node)
        assert node.get_parameter("threshold").value == -1.0
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------- judging


def test_a_valid_observation_gets_a_reward_with_its_stamp(make_graph, checkpoints) -> None:
    _node, client = make_graph(checkpoints["plain"])
    status = client.status[-1]  # latched: the client subscribed after the node published it
    assert status["judged"] == 0 and status["stage"] == 0 and status["threshold"] == 0.5
    assert status["threshold_source"] == "calibrated" and status["checkpoint"] == str(checkpoints["plain"])
    msg = client.observation(images(200))
    reward = client.judge(msg)
    assert 0.0 <= reward.success_probability <= 1.0
    assert reward.header.stamp == msg.header.stamp and reward.header.frame_id == "base"
    assert reward.stage == 0 and reward.success == (reward.success_probability >= 0.5)
    status = client.wait_status(lambda s: s["judged"] == 1)
    assert status["invalid"] == {} and status["last_probability"] == pytest.approx(reward.success_probability)


def test_invalid_observations_publish_nothing_and_count_their_reason(make_graph, checkpoints) -> None:
    node, client = make_graph(checkpoints["plain"])
    client.judge(client.observation())

    client.refused(client.observation(images(size=16)), "image_size")
    client.refused(client.observation(images(cameras=("side",))), "missing_camera")
    extra = client.observation(images(cameras=("top", "side", "wrist")))  # extra cameras are fine
    client.judge(extra)
    for encoding in ("bgr8", "mono8"):
        bad = client.observation()
        bad.images[1].encoding = encoding
        client.refused(bad, "encoding")
    truncated = client.observation()
    truncated.images[0].data = bytes(10)
    client.refused(truncated, "malformed")
    mismatched = client.observation()
    mismatched.camera_names = ["side"]
    status = client.refused(mismatched, "malformed")
    assert status["invalid"] == {"image_size": 1, "missing_camera": 1, "encoding": 2, "malformed": 2}
    assert status["invalid_total"] == 6 and "malformed" in status["last_error"]
    assert client.wait_status(lambda s: s["judged"] == 8)["judged"] == 8  # the valid ones only
    assert node.context.ok()


def test_nan_proprio_is_refused_when_the_classifier_reads_it(make_graph, checkpoints) -> None:
    (high, p_high), (low, p_low) = high_and_low(checkpoints["proprio"])
    _node, client = make_graph(checkpoints["proprio"])
    assert client.judge(client.observation(proprio=high)).success_probability == pytest.approx(
        p_high, abs=1e-6
    )
    assert client.judge(client.observation(proprio=low)).success_probability == pytest.approx(p_low, abs=1e-6)
    client.refused(client.observation(proprio=[0.0, np.nan, 1.0]), "proprio")
    client.refused(client.observation(proprio=[0.0, np.inf, 1.0]), "proprio")
    short = client.observation(proprio=high)
    short.proprio, short.proprio_names = short.proprio[:2], short.proprio_names[:2]
    assert client.refused(short, "proprio")["invalid"] == {"proprio": 3}


# ---------------------------------------------------------------------- debouncing


def test_debouncing_k2_of_n3_and_the_reset_service(make_graph, checkpoints) -> None:
    _node, always = make_graph(checkpoints["plain"], threshold=0.0, debounce_k=2, debounce_n=3)
    assert always.successes(4) == [False, True, True, True]
    assert always.reset() == "debouncer cleared (stage 0)"
    assert always.successes(2) == [False, True]
    status = always.wait_status(lambda s: s["judged"] == 6)
    assert (status["successes"], status["raw_successes"], status["resets"]) == (4, 6, 1)
    assert (
        status["threshold"] == 0.0 and status["threshold_source"] == "fixed" and status["debounce"] == [2, 3]
    )

    _node, never = make_graph(checkpoints["plain"], threshold=1.1, debounce_k=2, debounce_n=3)
    assert never.successes(4) == [False] * 4

    (high, p_high), (low, p_low) = high_and_low(checkpoints["proprio"])
    _node, mixed = make_graph(
        checkpoints["proprio"], threshold=(p_high + p_low) / 2, debounce_k=2, debounce_n=3
    )
    frames = [high, low, high, high, low, low, low, high]
    rewards = [mixed.judge(mixed.observation(proprio=p)) for p in frames]
    raw = [r.success_probability >= (p_high + p_low) / 2 for r in rewards]
    assert raw == [True, False, True, True, False, False, False, True]
    assert [r.success for r in rewards] == [False, False, True, True, True, False, False, False]


# ---------------------------------------------------------------------- stages


def test_stage_parameter_switches_the_judged_stage_and_clears_the_debouncer(make_graph, checkpoints) -> None:
    node, client = make_graph(checkpoints["staged"], stage=1, debounce_k=2, debounce_n=3)
    assert client.status[-1]["stage"] == 1 and client.status[-1]["tasks"] == ["stage_a", "stage_b"]
    rewards = [client.judge(client.observation()) for _ in range(3)]
    assert [r.success for r in rewards] == [False, True, True] and {r.stage for r in rewards} == {1}

    assert client.set_parameter("stage", 2).successful
    status = client.wait_status(lambda s: s["stage"] == 2)
    assert status["threshold"] == 1.1  # stage 2's calibrated threshold
    rewards = [client.judge(client.observation()) for _ in range(2)]
    assert [r.success for r in rewards] == [False, False] and {r.stage for r in rewards} == {2}

    assert client.set_parameter("stage", 1).successful
    assert client.successes(2) == [False, True]  # a fresh window: one success is not 2 of 3

    for value in (3, 0):
        result = client.set_parameter("stage", value)
        assert not result.successful and "stage must be in 1..2" in result.reason
    assert not client.set_parameter("stage", "two").successful  # integer parameter
    assert not client.set_parameter("debounce_k", 1).successful  # read-only
    assert node.stage == 1 and client.judge(client.observation()).stage == 1


def test_a_stage_the_classifier_does_not_judge_fails_at_start(context, checkpoints) -> None:
    from rclpy.parameter import Parameter

    from pld_reward.ros.reward_node import RewardNode

    for checkpoint, stage in (("staged", 0), ("plain", 1)):
        overrides = [
            Parameter("checkpoint", value=str(checkpoints[checkpoint])),
            Parameter("stage", value=stage),
        ]
        with pytest.raises(ValueError, match=r"RewardNodeConfig\.stage"):
            RewardNode(context=context, parameter_overrides=overrides)


# ---------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("truncate_params", "is corrupted: its hash differs"),
        ("garble_meta", "is corrupted or not a classifier"),
        ("remove", "no classifier at"),
    ],
)
def test_a_bad_checkpoint_fails_construction_with_a_clear_message(
    context, tmp_path: Path, damage: str, match: str
) -> None:
    from rclpy.parameter import Parameter

    from pld_reward.checkpoint import CheckpointError
    from pld_reward.ros.reward_node import RewardNode

    directory = save_classifier(tmp_path / "classifier", [0.5])
    if damage == "truncate_params":
        blob = (directory / "params.msgpack").read_bytes()
        (directory / "params.msgpack").write_bytes(blob[: len(blob) // 2])
    elif damage == "garble_meta":
        (directory / "classifier.json").write_text('{"format_version": 1, "config": ')
    else:
        (directory / "params.msgpack").unlink()
    with pytest.raises(CheckpointError, match=match) as excinfo:
        RewardNode(context=context, parameter_overrides=[Parameter("checkpoint", value=str(directory))])
    assert str(directory) in str(excinfo.value)


def test_main_exits_2_with_the_checkpoint_error(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    from pld_reward.ros.reward_node import main

    directory = save_classifier(tmp_path / "classifier", [0.5])
    (directory / "params.msgpack").write_bytes(b"\x00garbage")
    assert main(["--ros-args", "-p", f"checkpoint:={directory}"]) == 2
    assert f"reward_node: classifier {directory}/params.msgpack is corrupted" in capfd.readouterr().err
    assert main(["--ros-args", "-p", "debounce_k:=3"]) == 2
    assert "reward_node: RewardNodeConfig.checkpoint: required" in capfd.readouterr().err
