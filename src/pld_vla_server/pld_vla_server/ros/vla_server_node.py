"""The VLA server node: answers the newest `observation` with an `action_chunk`, never blocking a callback.

Thin: callbacks convert messages (`conversions`) and hand them to the `ChunkServer` core, which runs the
backend on its own thread and calls back with each chunk; the node publishes it with the stamp of the
observation it answers. The node comes up at once and reports `ready: false` on the latched
`vla_status` topic until the backend has loaded. Bad observations (malformed message, wrong camera set,
image size or dtype, no instruction) are counted and dropped with a warning at most once a second.

Topics (relative to the node's namespace):
  sub  observation           pld_interfaces/Observation   reliable, keep last 1 (newest wins)
  sub  instruction           std_msgs/String              reliable, transient local, depth 1
  pub  action_chunk          pld_interfaces/ActionChunk   reliable, keep last 10
  pub  inference_latency_ms  std_msgs/Float32             reliable, keep last 10 (backend wall time)
  pub  vla_status            std_msgs/String (JSON)       reliable, transient local, depth 1

Run: `python -m pld_vla_server.ros.vla_server_node --ros-args -p backend:=small_vla -p instruction:="..."`
"""

from __future__ import annotations

import json
import sys

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float32, String

from pld_interfaces.msg import ActionChunk as ActionChunkMsg
from pld_interfaces.msg import Observation
from pld_sim.ros.node_main import spin_node
from pld_sim.ros.parameters import declare_config
from pld_vla_server.backends import VLABackend
from pld_vla_server.ros.conversions import action_chunk_to_msg, vla_observation_from_msg
from pld_vla_server.server import ChunkServer, Outcome, ServedChunk, VLAServerConfig

# Depth 1: an observation the server has not taken yet is worthless once a newer one exists.
OBSERVATION_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# Latched, so a server started after the episode manager still gets the current instruction.
INSTRUCTION_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
CHUNK_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATENCY_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Latched: a late `ros2 topic echo`, test or bench client still sees readiness and the newest counters.
STATUS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def config_from_parameters(node: Node, defaults: VLAServerConfig | None = None) -> VLAServerConfig:
    """Declare one read-only ROS parameter per config field and build the validated config from them.

    The only place where ROS parameters map to `VLAServerConfig`. `backend_options` is a JSON object
    string (ROS parameters have no dict type); float fields accept integers. Raises ValueError.
    """
    return VLAServerConfig.from_dict(declare_config(node, VLAServerConfig, defaults))


class VLAServerNode(Node):
    """Serves action chunks from one VLA backend; see the module docstring."""

    def __init__(
        self,
        cfg: VLAServerConfig | None = None,
        *,
        backend: VLABackend | None = None,
        node_name: str = "vla_server",
        **kwargs,
    ) -> None:
        super().__init__(node_name, **kwargs)
        self.cfg = config_from_parameters(self, cfg)
        self._last_submitted: tuple[int, int] | None = None  # episode id, step of the newest answered obs
        self._chunk_pub = self.create_publisher(ActionChunkMsg, "action_chunk", CHUNK_QOS)
        self._latency_pub = self.create_publisher(Float32, "inference_latency_ms", LATENCY_QOS)
        self._status_pub = self.create_publisher(String, "vla_status", STATUS_QOS)
        self.server = ChunkServer(
            self.cfg, backend, on_chunk=self._publish_chunk, on_state=self._on_state_change
        )
        self.create_subscription(Observation, "observation", self.on_observation, OBSERVATION_QOS)
        self.create_subscription(String, "instruction", self.on_instruction, INSTRUCTION_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # status keeps coming when sim time stands still
        self.create_timer(self.cfg.status_period_s, self.publish_status, clock=steady)
        self.server.start()
        self.publish_status()
        self.get_logger().info(f"loading VLA backend {self.cfg.backend!r} in the background")

    # ------------------------------------------------------------------ callbacks

    def on_observation(self, msg: Observation) -> None:
        """Subscription callback of `observation` (public so in-process compositions can call it)."""
        last = self._last_submitted
        if (
            self.cfg.every_n_steps > 1
            and last is not None
            and last[0] == msg.episode_id
            and 0 <= msg.step - last[1] < self.cfg.every_n_steps
        ):
            return  # the chunk of step last[1] serves this step (lockstep graphs)
        try:
            obs = vla_observation_from_msg(msg)
        except ValueError as exc:
            self.server.reject(str(exc))
            self._warn_rejected(str(exc))
            return
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        outcome = self.server.submit(obs, stamp_ns, msg.header)
        if outcome is Outcome.REJECTED:
            self._warn_rejected(self.server.status()["last_reject_reason"])
        elif outcome is Outcome.QUEUED:
            self._last_submitted = (int(msg.episode_id), int(msg.step))

    def on_instruction(self, msg: String) -> None:
        self.server.set_instruction(msg.data)
        self.get_logger().info(f"instruction: {msg.data!r}")
        self.publish_status()

    def _warn_rejected(self, reason: str) -> None:
        # one call site, so the throttle holds across every kind of bad observation
        self.get_logger().warning(
            f"dropped an invalid observation ({self.server.status()['rejected_invalid']} so far): {reason}",
            throttle_duration_sec=1.0,
        )

    # ------------------------------------------------------------------ publishing (worker thread)

    def _publish_chunk(self, served: ServedChunk) -> None:
        header = served.tag
        self._chunk_pub.publish(
            action_chunk_to_msg(served.chunk, header.stamp, header.frame_id, served.inference_ms)
        )
        self._latency_pub.publish(Float32(data=float(served.inference_ms)))

    def _on_state_change(self, status: dict) -> None:
        if status["ready"]:
            self.get_logger().info(f"VLA backend ready: {status['model_id']} {status['input_spec']}")
        else:
            self.get_logger().error(f"VLA backend not available: {status['last_error']}")
        self._publish_status(status)

    def publish_status(self) -> None:
        """Readiness, backend, model id, counters and last error as JSON on `vla_status`."""
        self._publish_status(self.server.status())

    def _publish_status(self, status: dict) -> None:
        self._status_pub.publish(String(data=json.dumps(status)))

    def destroy_node(self) -> None:
        self.server.close()  # the worker publishes: stop it before the publishers go
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of `python -m pld_vla_server.ros.vla_server_node` (and the `vla_server` console script)."""
    return spin_node(VLAServerNode, "vla_server", args)


if __name__ == "__main__":
    sys.exit(main())
