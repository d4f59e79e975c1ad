"""The label node: a person labels success live while the robot runs; frames go to classifier shards.

Thin: every observation is converted (`reward_conversions.frame_from_msg`, the reward node's checks) and
stored by a `LiveLabeller` (pld_reward/labelling.py) with the label that is current when it arrives.
An episode starts as "failure"; `mark_success` true makes the following frames successes, false failures
again; `end_episode` writes one shard (labeller "human") and returns its path; `discard_episode` drops the
frames. The next observation starts the next episode. Train on the shards with
`pld reward train --task <task> --frames runs/reward/<task>/frames/train runs/reward/<task>/frames/human`.

Invalid observations (missing camera, wrong size or encoding, ...) are not stored: they are counted per
reason on `label_status` and warned about at most once a second.

With `keyboard:=true` and a terminal on stdin, keys do the same as the services: s success, f failure,
e end episode (save), d discard, q quit (then Enter).

Topics and services (relative to the node's namespace; `~` = the node's name):
  sub  observation            pld_interfaces/Observation  reliable, keep last 10
  pub  label_status           std_msgs/String (JSON)      reliable, transient local, depth 1 (latched)
  srv  ~/mark_success         std_srvs/SetBool            true: success from now on, false: failure
  srv  ~/end_episode          std_srvs/Trigger            write the shard; message = its path
  srv  ~/discard_episode      std_srvs/Trigger            drop the episode in progress

Parameters: `LabelNodeConfig` (pld_reward/node_config.py): task, out_dir, stage, cameras, image_size,
input_size, source, keyboard, max_frames (all read-only).

Run: `python -m pld_reward.ros.label_node --ros-args -p task:=pick_cube -p keyboard:=true`
  then e.g. `ros2 service call /label_node/mark_success std_srvs/srv/SetBool "{data: true}"`
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from pld_interfaces.msg import Observation
from pld_reward.labelling import LiveLabeller, keyboard_loop
from pld_reward.node_config import LabelNodeConfig
from pld_reward.preprocess import FrameError
from pld_reward.ros.reward_conversions import InvalidFrame, frame_from_msg
from pld_sim.ros.node_main import spin_node
from pld_sim.ros.parameters import declare_config

# Every frame counts for labelling (not only the newest): a short queue rides out a slow callback.
OBSERVATION_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
STATUS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
STATUS_PERIOD_S = 0.5


def config_from_parameters(node: Node, defaults: LabelNodeConfig | None = None) -> LabelNodeConfig:
    """Declare one read-only ROS parameter per config field; the only parameter -> config mapping."""
    return LabelNodeConfig.from_dict(declare_config(node, LabelNodeConfig, defaults))


class LabelNode(Node):
    """Feeds observations to a LiveLabeller; see the module docstring."""

    def __init__(
        self, cfg: LabelNodeConfig | None = None, *, node_name: str = "label_node", **node_kwargs: Any
    ) -> None:
        super().__init__(node_name, **node_kwargs)
        self.cfg = config_from_parameters(self, cfg)
        self.classifier_cfg = self.cfg.classifier_config()
        self.labeller = LiveLabeller(
            self.classifier_cfg,
            self.cfg.frames_dir,
            self.cfg.task,
            source=self.cfg.source,
            stage=self.cfg.stage,
            max_frames=self.cfg.max_frames,
        )
        self.received = 0
        self.invalid: dict[str, int] = {}
        self.last_error = ""
        self._status_pub = self.create_publisher(String, "label_status", STATUS_QOS)
        self.create_subscription(Observation, "observation", self.on_observation, OBSERVATION_QOS)
        self.create_service(SetBool, "~/mark_success", self._on_mark)
        self.create_service(Trigger, "~/end_episode", self._on_end)
        self.create_service(Trigger, "~/discard_episode", self._on_discard)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(STATUS_PERIOD_S, self._publish_status_if_changed, clock=steady)
        self.keyboard_thread: threading.Thread | None = None
        if self.cfg.keyboard:
            self._start_keyboard()
        self.publish_status()
        self.get_logger().info(
            f"labelling {self.cfg.task} (stage {self.cfg.stage}) from cameras {self.cfg.cameras} "
            f"({self.cfg.image_size}px -> {self.cfg.input_size}px) into {self.cfg.frames_dir}"
        )

    def _start_keyboard(self) -> None:
        if not sys.stdin.isatty():
            self.get_logger().warning("keyboard:=true but stdin is not a terminal: use the services")
            return

        def run() -> None:
            keyboard_loop(self.labeller, sys.stdin, sys.stdout, stop=lambda: not self.context.ok())
            self.get_logger().info("keyboard: quit")
            rclpy.try_shutdown(context=self.context)  # main() then returns 0

        self.keyboard_thread = threading.Thread(target=run, name="label_keyboard", daemon=True)
        self.keyboard_thread.start()

    # ------------------------------------------------------------------ callbacks

    def on_observation(self, msg: Observation) -> None:
        """Subscription callback of `observation`: store the frame with the current label."""
        self.received += 1
        try:
            images, _ = frame_from_msg(msg, self.classifier_cfg)
            kept = self.labeller.add_frame(images, list(msg.proprio), int(msg.step))
        except InvalidFrame as exc:
            self._reject(exc.reason, str(exc))
            return
        except FrameError as exc:
            self._reject("frame", str(exc))
            return
        except ValueError as exc:  # e.g. the proprio length changed within an episode
            self._reject("malformed", str(exc))
            return
        if not kept:
            self.get_logger().warning(
                f"episode holds {self.cfg.max_frames} frames: dropping new ones (end or discard it)",
                throttle_duration_sec=5.0,
            )

    def _reject(self, reason: str, message: str) -> None:
        self.invalid[reason] = self.invalid.get(reason, 0) + 1
        self.last_error = f"{reason}: {message}"
        self.get_logger().warning(f"observation not stored ({reason}): {message}", throttle_duration_sec=1.0)

    def _on_mark(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.labeller.mark(bool(request.data))
        response.success = True
        response.message = (
            f"{'success' if request.data else 'failure'} from now on ({self.labeller.frames} frames)"
        )
        self.get_logger().info(response.message)
        self.publish_status()
        return response

    def _on_end(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        frames, positives = self.labeller.frames, self.labeller.positives
        try:
            path = self.labeller.end_episode()
        except (ValueError, OSError) as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().warning(f"end_episode: {exc}")
        else:
            response.success, response.message = True, str(path)
            self.get_logger().info(f"saved {frames} frames ({positives} success) to {path}")
        self.publish_status()
        return response

    def _on_discard(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        count = self.labeller.discard_episode()
        response.success, response.message = True, f"discarded {count} frame(s)"
        self.get_logger().info(response.message)
        self.publish_status()
        return response

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        labeller = self.labeller
        return {
            "task": self.cfg.task,
            "stage": self.cfg.stage,
            "label": "success" if labeller.label else "failure",
            "frames": labeller.frames,
            "positives": labeller.positives,
            "dropped": labeller.dropped,
            "received": self.received,
            "invalid": dict(self.invalid),
            "last_error": self.last_error,
            "saved": [str(p) for p in labeller.saved],
            "discarded": labeller.discarded,
            "out_dir": str(self.cfg.frames_dir),
        }

    def publish_status(self) -> None:
        self._last_status = json.dumps(self.status())
        self._status_pub.publish(String(data=self._last_status))

    def _publish_status_if_changed(self) -> None:
        if json.dumps(self.status()) != self._last_status:
            self.publish_status()


def main(args: list[str] | None = None) -> int:
    """Entry point of `python -m pld_reward.ros.label_node` (and the `label_node` script)."""
    return spin_node(LabelNode, "label_node", args)


if __name__ == "__main__":
    sys.exit(main())
