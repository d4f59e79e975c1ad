"""The reward node: judges every observation with the learned success classifier and publishes a `Reward`.

Thin: `reward_conversions.frame_from_msg` turns the observation into the classifier's cameras (refusing
frames it cannot judge), `SuccessClassifier.judge` gives the probability and the thresholded decision of
the current stage, a k-of-n `Debouncer` steadies the decision, and the Reward carries the observation's
header, so consumers know exactly which frame was judged.

Invalid input (missing camera, wrong size, non-rgb8 encoding, malformed image, bad proprio when the
classifier reads it, or any error while judging): NOTHING is published for that observation, the
`invalid` counter of its reason goes up on `reward_status`, and a warning is logged at most once a second.
The node never stops because of an observation. A missing or corrupted checkpoint stops the node at
start-up with the CheckpointError message (exit code 2 from `main`).

`stage` is the one dynamic parameter: the GPU-insertion stage machine sets it when it moves on
(`ros2 param set /reward_node stage 2`); a stage the classifier does not judge is refused, and a change
clears the debouncer. The `~/reset` service clears it too (call it at episode start). It is private
(`<ns>/reward_node/reset`) because the sim node's `<ns>/reset` (pld_interfaces/Reset) shares the namespace.

Topics and services (relative to the node's namespace):
  sub  observation    pld_interfaces/Observation  reliable, keep last 1 (newest wins)
  pub  reward         pld_interfaces/Reward       reliable, keep last 10
  pub  reward_status  std_msgs/String (JSON)      reliable, transient local, depth 1 (latched); on change,
                                                  at most twice a second: judged, successes, invalid
                                                  {reason: count}, stage, threshold, checkpoint, ...
  srv  ~/reset        std_srvs/Trigger            clear the debouncer (episode start)

Parameters: `RewardNodeConfig` (pld_reward/node_config.py): checkpoint, threshold (-1 = calibrated),
stage, debounce_k, debounce_n.

Run: `python -m pld_reward.ros.reward_node --ros-args -p checkpoint:=runs/reward/pick_cube/classifier`
  or `ros2 run pld_reward reward_node --ros-args --params-file src/pld_reward/config/reward_node.yaml`
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import fields
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from pld_interfaces.msg import Observation, Reward
from pld_reward.classifier import SuccessClassifier
from pld_reward.debounce import Debouncer
from pld_reward.node_config import RewardNodeConfig
from pld_reward.ros.reward_conversions import InvalidFrame, frame_from_msg, reward_to_msg
from pld_sim.ros.node_main import spin_node
from pld_sim.ros.parameters import field_defaults

# Depth 1: a reward for the newest frame beats a backlog of stale ones (= the residual actor's profile).
OBSERVATION_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
REWARD_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Latched: a late `ros2 topic echo`, test or episode manager still sees the counters.
STATUS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
STATUS_PERIOD_S = 0.5  # counters change with every frame: publish them at most twice a second
DYNAMIC_PARAMETERS = ("stage",)


def config_from_parameters(node: Node, defaults: RewardNodeConfig | None = None) -> RewardNodeConfig:
    """Declare one ROS parameter per config field and build the validated config from them.

    The only place where ROS parameters map to `RewardNodeConfig`. All are read-only except `stage`;
    `threshold` is a double (negative = calibrated) that also accepts integers. Raises ValueError.
    """
    if defaults is None:
        values = {f.name: f.default for f in fields(RewardNodeConfig) if f.name != "checkpoint"}
        values["checkpoint"] = ""  # required: an empty default fails validation with a clear message
    else:
        values = field_defaults(RewardNodeConfig, defaults)
    out: dict[str, Any] = {}
    for f in fields(RewardNodeConfig):
        descriptor = ParameterDescriptor(
            description=f.metadata.get("help", ""),
            read_only=f.name not in DYNAMIC_PARAMETERS,
            dynamic_typing=isinstance(values[f.name], float),
        )
        out[f.name] = node.declare_parameter(f.name, values[f.name], descriptor).value
    return RewardNodeConfig.from_dict(out)


class RewardNode(Node):
    """Publishes one Reward per judgeable observation; see the module docstring."""

    def __init__(
        self,
        cfg: RewardNodeConfig | None = None,
        classifier: SuccessClassifier | None = None,
        *,
        node_name: str = "reward_node",
        **node_kwargs: Any,
    ) -> None:
        super().__init__(node_name, **node_kwargs)
        self.cfg = config_from_parameters(self, cfg)
        # CheckpointError (a ValueError) for a missing or corrupted directory: main() exits 2 with it
        self.classifier = (
            classifier if classifier is not None else SuccessClassifier.load(self.cfg.checkpoint)
        )
        ccfg = self.classifier.cfg
        try:
            ccfg.stage_index(self.cfg.stage)
        except ValueError as exc:
            raise ValueError(f"RewardNodeConfig.stage: {exc}") from None
        self._lock = threading.Lock()
        self.stage = self.cfg.stage
        self.debouncer = Debouncer(self.cfg.debounce_k, self.cfg.debounce_n)
        self.counters: dict[str, Any] = {"judged": 0, "successes": 0, "raw_successes": 0, "resets": 0}
        self.invalid: dict[str, int] = {}
        self.last_probability: float | None = None
        self.last_error = ""
        self._warm_up()

        self._reward_pub = self.create_publisher(Reward, "reward", REWARD_QOS)
        self._status_pub = self.create_publisher(String, "reward_status", STATUS_QOS)
        self.create_subscription(Observation, "observation", self.on_observation, OBSERVATION_QOS)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # status keeps coming when sim time stands still
        self.create_timer(STATUS_PERIOD_S, self._publish_status_if_changed, clock=steady)
        self.publish_status()
        self.get_logger().info(
            f"judging stage {self.stage} of {list(ccfg.tasks)} with cameras {list(ccfg.cameras)} "
            f"({ccfg.image_size}px rgb8) at threshold {self.threshold():g} "
            f"({'fixed' if self.cfg.fixed_threshold is not None else 'calibrated'}), "
            f"debounce {self.cfg.debounce_k} of {self.cfg.debounce_n}, from {self.cfg.checkpoint}"
        )

    def _warm_up(self) -> None:
        """Compile the classifier now, so the first observation is not judged seconds late."""
        ccfg = self.classifier.cfg
        blank = np.zeros((ccfg.image_size, ccfg.image_size, 3), np.uint8)
        proprio = np.zeros(ccfg.proprio_dim, np.float32) if ccfg.use_proprio else None
        self.classifier.judge(dict.fromkeys(ccfg.cameras, blank), proprio, self.stage)

    def threshold(self, stage: int | None = None) -> float:
        """The threshold in force for `stage` (default: the current one)."""
        fixed = self.cfg.fixed_threshold
        return (
            fixed if fixed is not None else self.classifier.threshold(self.stage if stage is None else stage)
        )

    # ------------------------------------------------------------------ callbacks

    def on_observation(self, msg: Observation) -> None:
        """Subscription callback of `observation` (public so in-process compositions can call it)."""
        with self._lock:
            stage = self.stage
            try:
                images, proprio = frame_from_msg(msg, self.classifier.cfg)
                judgement = self.classifier.judge(images, proprio, stage, self.cfg.fixed_threshold)
            except InvalidFrame as exc:  # = the core's FrameError, with its reason
                self._reject(exc.reason, str(exc))
                return
            except Exception as exc:  # never let one observation stop the reward stream
                self._reject("error", f"{type(exc).__name__}: {exc}")
                return
            success = self.debouncer.update(judgement.success)
            self.counters["judged"] += 1
            self.counters["raw_successes"] += int(judgement.success)
            self.counters["successes"] += int(success)
            self.last_probability = judgement.probability
        self._reward_pub.publish(reward_to_msg(msg.header, judgement.probability, success, stage))

    def _reject(self, reason: str, message: str) -> None:
        self.invalid[reason] = self.invalid.get(reason, 0) + 1
        self.last_error = f"{reason}: {message}"
        self.get_logger().warning(f"observation not judged ({reason}): {message}", throttle_duration_sec=1.0)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self.debouncer.reset()
            self.counters["resets"] += 1
        self.publish_status()
        response.success, response.message = True, f"debouncer cleared (stage {self.stage})"
        return response

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse a stage the classifier does not judge (read-only parameters are refused by rclpy)."""
        for parameter in parameters:
            if parameter.name != "stage":
                continue
            value = parameter.value
            if isinstance(value, bool) or not isinstance(value, int):
                return SetParametersResult(
                    successful=False, reason=f"stage must be an integer, got {value!r}"
                )
            try:
                self.classifier.cfg.stage_index(value)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        for parameter in parameters:
            if parameter.name == "stage":
                self.set_stage(int(parameter.value))

    def set_stage(self, stage: int) -> None:
        """Judge `stage` from the next observation on, with a cleared debouncer (the parameter's effect)."""
        self.classifier.cfg.stage_index(stage)  # ValueError for a stage this classifier does not judge
        with self._lock:
            previous, self.stage = self.stage, stage
            self.debouncer.reset()
        self.get_logger().info(f"stage {previous} -> {stage} (threshold {self.threshold():g})")
        self.publish_status()

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.counters,
                "invalid": dict(self.invalid),
                "invalid_total": sum(self.invalid.values()),
                "stage": self.stage,
                "threshold": self.threshold(),
                "threshold_source": "fixed" if self.cfg.fixed_threshold is not None else "calibrated",
                "debounce": [self.cfg.debounce_k, self.cfg.debounce_n],
                "last_probability": self.last_probability,
                "last_error": self.last_error,
                "checkpoint": self.cfg.checkpoint,
                "tasks": list(self.classifier.cfg.tasks),
            }

    def publish_status(self) -> None:
        """Counters and settings as JSON on the latched `reward_status`."""
        self._last_status = json.dumps(self.status())
        self._status_pub.publish(String(data=self._last_status))

    def _publish_status_if_changed(self) -> None:
        if json.dumps(self.status()) != self._last_status:
            self.publish_status()


def main(args: list[str] | None = None) -> int:
    """Entry point of `python -m pld_reward.ros.reward_node` (and the `reward_node` script)."""
    return spin_node(RewardNode, "reward_node", args)


if __name__ == "__main__":
    sys.exit(main())
