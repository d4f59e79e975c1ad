"""The recorder node: one rosbag2 (MCAP) per episode plus the dataset index, from the raw CDR on the wire.

Thin: the data topics are subscribed with `raw=True` and their bytes go unchanged to the ROS-free
`DatasetRecorder` (`pld_residual.recording.core`), which cuts episodes by header stamp between the RESET
and DONE events and writes them through `pld_residual.dataset.writer`, the same writer as `pld collect`.
Malformed, NaN or wrong-size messages are counted and dropped; the counters are on the latched
`recorder_status` topic. On shutdown (Ctrl-C, SIGTERM, `destroy_node()`) the open episode is finished as
aborted (end reason 'shutdown'), so every bag on disk is closed and readable.

Camera topics are subscribed once the first observation names the cameras (frames before that are not in
the bags; the `observation` bundle, which the datasets are read from, carries the images anyway).

Topics (relative to the node's namespace):
  sub  observation              pld_interfaces/Observation    raw, reliable, keep last 50
  sub  joint_states             sensor_msgs/JointState        raw, reliable, keep last 50
  sub  camera/<name>/image_raw  sensor_msgs/Image             raw, sensor data (best effort)
  sub  command                  pld_interfaces/ActionCommand  raw, reliable, keep last 50
  sub  reward                   pld_interfaces/Reward         raw, reliable, keep last 50
  sub  episode                  pld_interfaces/EpisodeEvent   reliable, keep last 100
  pub  recorder_status          std_msgs/String (JSON)        reliable, transient local, depth 1

Run: `ros2 run pld_residual recorder --ros-args -p dataset_dir:=runs/my-dataset`
  or `python -m pld_residual.ros.recorder_node --ros-args -r __ns:=/franka -p dataset_dir:=...`
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from pld_interfaces.msg import ActionCommand, EpisodeEvent, Observation, Reward
from pld_residual.dataset import topics
from pld_residual.recording.config import RecorderConfig
from pld_residual.recording.core import DatasetRecorder, PhaseEvent
from pld_sim.ros.node_main import spin_node
from pld_sim.ros.parameters import declare_config

# Reliable like the publishers (sim node, actor); deeper than theirs so a busy recorder loses nothing.
DATA_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
IMAGE_QOS = qos_profile_sensor_data  # matches the sim node's best-effort camera publishers
EPISODE_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
# Latched: a late `ros2 topic echo` or test still sees the newest counters.
STATUS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
POLL_PERIOD_S = 0.05  # placement of waiting messages and the finish of DONE episodes (wall clock)
# ROS type of every raw data topic (the bag stores the same name, topics.MSG_TYPES)
RAW_TYPES = {
    topics.OBSERVATION: Observation,
    topics.JOINT_STATES: JointState,
    topics.COMMAND: ActionCommand,
    topics.REWARD: Reward,
}


def config_from_parameters(node: Node, defaults: RecorderConfig | None = None) -> RecorderConfig:
    """Declare one read-only ROS parameter per config field and build the validated config from them.

    The only place where ROS parameters map to `RecorderConfig`. Raises ValueError."""
    return RecorderConfig.from_dict(declare_config(node, RecorderConfig, defaults))


def event_from_msg(msg: EpisodeEvent) -> PhaseEvent:
    stamp = msg.header.stamp
    return PhaseEvent(
        episode_id=int(msg.episode_id),
        phase=int(msg.phase),
        t_base=int(msg.t_base),
        step=int(msg.step),
        seed=int(msg.seed),
        success=bool(msg.success),
        end_reason=int(msg.end_reason),
        task=str(msg.task),
        instruction=str(msg.instruction),
        stamp_ns=int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec),
    )


class RecorderNode(Node):
    """Records the namespace's dataset topics into episode bags; see the module docstring."""

    def __init__(self, cfg: RecorderConfig | None = None, *, node_name: str = "recorder", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.cfg = config_from_parameters(self, cfg)
        self.recorder = DatasetRecorder(
            self.cfg, namespace=self.get_namespace(), notify=self._notify
        )  # ValueError when another process writes that dataset
        self.cameras: list[str] = []
        self._status_pub = self.create_publisher(String, "recorder_status", STATUS_QOS)
        for topic, msg_type in RAW_TYPES.items():
            self.create_subscription(msg_type, topic, self._raw_callback(topic), DATA_QOS, raw=True)
        self.create_subscription(EpisodeEvent, "episode", self.on_event, EPISODE_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # episodes close even when sim time stands still
        self.create_timer(POLL_PERIOD_S, self.recorder.poll, clock=steady)
        self.create_timer(self.cfg.status_period_s, self.publish_status, clock=steady)
        self.publish_status()
        self.get_logger().info(
            f"recording {self.get_namespace()} into {self.recorder.root} (source {self.cfg.source!r}, "
            f"keep_failures {self.cfg.keep_failures})"
        )

    # ------------------------------------------------------------------ callbacks

    def _raw_callback(self, topic: str) -> Callable[[bytes], None]:
        msgtype = topics.IMAGE_TYPE if topic.startswith("camera/") else topics.MSG_TYPES[topic]

        def callback(data: bytes) -> None:
            if topic == topics.OBSERVATION and not self.cameras:
                self._subscribe_cameras(data)
            self.recorder.on_message(topic, msgtype, data)

        return callback

    def _subscribe_cameras(self, data: bytes) -> None:
        """Learn the camera names from the first decodable observation and subscribe their image topics."""
        try:
            names = list(deserialize_message(data, Observation).camera_names)
        except Exception:  # a malformed observation: the core counts it, the next one may name the cameras
            return
        self.cameras = names
        for name in names:
            topic = topics.camera_topic(name)
            try:
                self.create_subscription(Image, topic, self._raw_callback(topic), IMAGE_QOS, raw=True)
            except Exception as exc:  # a camera name that is no valid ROS name must not stop the node
                self.get_logger().error(f"cannot subscribe {topic}: {exc}")
        if names:
            self.get_logger().info(f"recording cameras {names}")

    def on_event(self, msg: EpisodeEvent) -> None:
        """Subscription callback of `episode` (public so in-process compositions can call it)."""
        self.recorder.on_event(event_from_msg(msg))
        self.publish_status()

    def _notify(self, level: str, text: str) -> None:
        """The core's reports: per-message ones throttled (they may come at the message rate)."""
        log = self.get_logger()
        if level == "info":
            log.info(text)
        elif level == "warning":
            log.warning(text)
        elif level == "drop":
            log.warning(text, throttle_duration_sec=1.0)
        else:
            log.error(text, throttle_duration_sec=1.0)

    def publish_status(self) -> None:
        """Episode and message counters as JSON on `recorder_status`."""
        self._status_pub.publish(String(data=json.dumps(self.recorder.status())))

    def destroy_node(self) -> None:
        """Finish the open episode and release the dataset before the node goes (Ctrl-C included)."""
        self.recorder.shutdown()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of `python -m pld_residual.ros.recorder_node` (and the `recorder` script)."""
    return spin_node(RecorderNode, "recorder", args)


if __name__ == "__main__":
    sys.exit(main())
