"""The sim hardware node: the simulated robot behind the same topics and Reset service as a real driver.

Thin: callbacks convert messages (`conversions`), call the `SimDriver` core and publish. Modes:

- `lockstep`: each received `command` advances exactly one control step, then the new state is
  published. A rejected command still advances one (hold) step, so a client waiting for the next
  observation is never stuck. Reset publishes the first observation of the episode. A command that
  names the observation it answers (`episode_id` > 0, `step`) and does not answer the newest one (sent
  before a reset, or twice) is dropped and counted as `stale_commands`: it must not move the next state.
- `realtime`: a wall-clock (steady) timer at `control_hz` steps with the newest valid command while it is
  younger than `command_timeout_s`, and holds otherwise. With `publish_phase_s` > 0 the step's state is
  published that long after the tick rather than as soon as it is rendered: a camera with a fixed
  latency, whose frames come at a steady rate however long a render takes. A reset's first observation
  goes out at the next tick too (the stream keeps its rate across episodes).

Every step publishes `/clock`, `joint_states`, `camera/<name>/image_raw` and `observation` (and, with
`reward_topic`, the task's success predicate as a `Reward` after every step), all stamped with the same
sim time (strictly increasing, also across resets); consumers set `use_sim_time:=true`.
Rejected commands are logged at most once a second and counted on the latched `sim_status` topic (JSON).

Run: `python -m pld_sim.ros.sim_node --ros-args -p mode:=lockstep -p task:=pick_cube`
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from pld_interfaces.msg import ActionCommand, Observation, Reward
from pld_interfaces.srv import Reset
from pld_sim.ros.conversions import (
    action_command_to_array,
    clock_msg,
    joint_state_to_msg,
    nanoseconds_to_time,
    observation_to_msg,
    predicate_reward_msg,
)
from pld_sim.ros.node_main import spin_node
from pld_sim.ros.parameters import declare_config
from pld_sim.sim_driver import SimDriver, SimDriverConfig

# Every received command must be executed in lockstep; the observation bundle is what the recorder keeps.
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
OBSERVATION_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
JOINT_STATES_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # as joint_state_broadcaster
REWARD_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # = the reward node's
IMAGE_QOS = qos_profile_sensor_data  # best effort, keep last 5: camera-driver convention, for ROS tools
# Reliable matches both best-effort (rclpy/rclcpp TimeSource) and reliable /clock subscribers.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# Latched: a late `ros2 topic echo` or test still sees the newest counters.
STATUS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def config_from_parameters(node: Node, defaults: SimDriverConfig | None = None) -> SimDriverConfig:
    """Declare one read-only ROS parameter per config field and build the validated config from them.

    The only place where ROS parameters map to `SimDriverConfig`. Float fields accept integer values
    (`-p control_hz:=20`). Raises ValueError for invalid values.
    """
    return SimDriverConfig.from_dict(declare_config(node, SimDriverConfig, defaults))


class SimNode(Node):
    """Publishes the simulated robot's state and executes its commands; see the module docstring."""

    # The renderer's OpenGL (EGL) context works only on the thread that made it current: an in-process
    # composition (`pld run`) must build, spin and destroy this node on one thread.
    THREAD_AFFINE = True

    def __init__(self, cfg: SimDriverConfig | None = None, *, node_name: str = "sim_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.cfg = config_from_parameters(self, cfg)
        self.driver = SimDriver(self.cfg)
        self._latest: tuple[np.ndarray, float] | None = None  # realtime: newest valid command, receipt time
        self._camera_pubs: dict[str, Publisher] = {}
        self._observation_pub = self.create_publisher(Observation, "observation", OBSERVATION_QOS)
        self._joint_pub = self.create_publisher(JointState, "joint_states", JOINT_STATES_QOS)
        self._clock_pub = (
            self.create_publisher(ClockMsg, "/clock", CLOCK_QOS) if self.cfg.publish_clock else None
        )
        self._status_pub = self.create_publisher(String, "sim_status", STATUS_QOS)
        self._reward_pub = (
            self.create_publisher(Reward, self.cfg.reward_topic, REWARD_QOS)
            if self.cfg.reward_topic
            else None
        )
        self.create_subscription(ActionCommand, "command", self.on_command, COMMAND_QOS)
        self.create_service(Reset, "reset", self._on_reset)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # wall clock, whatever use_sim_time says
        self._tick_timer = None
        self._reset_pending = False  # realtime: a reset's first observation waits for the next tick
        if self.cfg.mode == "realtime":
            self._tick_timer = self.create_timer(1.0 / self.cfg.control_hz, self._on_tick, clock=steady)
        self.create_timer(self.cfg.status_period_s, self.publish_status, clock=steady)
        self.publish_status()
        self.get_logger().info(
            f"{self.cfg.mode} sim of {self.driver.task_name} (seed {self.driver.seed}): "
            f"{self.cfg.control_hz:g} Hz, {self.cfg.image_size} px cameras {self.driver.camera_names}, "
            f"frame '{self.driver.frame_id}'"
        )

    # ------------------------------------------------------------------ callbacks

    def on_command(self, msg: ActionCommand) -> None:
        """Subscription callback of `command` (public so in-process compositions can call it directly)."""
        action = action_command_to_array(msg)
        if self.cfg.mode == "lockstep":
            driver = self.driver
            if msg.episode_id > 0 and (msg.episode_id, msg.step) != (driver.episode_id, driver.step):
                driver.stats.stale_commands += 1
                return
            if not self._run(lambda: self.driver.apply(action)):
                self._log_rejected()
            return
        command = self.driver.screen(action)
        if command is None:
            self._latest = None  # an invalid command cancels the previous one: hold from the next tick
            self._log_rejected()
        else:
            self._latest = (command, time.monotonic())

    def _on_tick(self) -> None:
        publish_at = self._publish_time()
        if self._reset_pending:  # the reset took this period: publish its state, step from the next
            self._reset_pending = False
            _sleep_until(publish_at)
            self.publish_state()
            return
        latest = self._latest
        if latest is not None and time.monotonic() - latest[1] <= self.cfg.command_timeout_s:
            self._run(lambda: self.driver.apply(latest[0]), publish_at)
        else:
            self._run(self.driver.hold, publish_at)

    def _publish_time(self) -> float | None:
        """Monotonic time (s) to publish this tick's state: its scheduled time (not the callback's, which
        runs late by the executor's wake-up) plus `publish_phase_s`; None to publish at once."""
        if self.cfg.publish_phase_s <= 0 or self._tick_timer is None:
            return None
        period_ns = self._tick_timer.timer_period_ns
        scheduled_ns = time.monotonic_ns() + self._tick_timer.time_until_next_call() - period_ns
        return scheduled_ns * 1e-9 + self.cfg.publish_phase_s

    def _run(self, step, publish_at: float | None = None) -> bool:
        """Step the driver and publish; a diverged simulation is logged, not raised into the executor."""
        try:
            result = step()
        except RuntimeError as exc:
            self.get_logger().error(f"simulation step failed, reset needed: {exc}", throttle_duration_sec=1.0)
            return True
        _sleep_until(publish_at)
        self.publish_state()
        if self._reward_pub is not None:
            success = bool(self.driver.last_info.get("success", False))
            stamp = nanoseconds_to_time(self.driver.sim_time_ns)
            self._reward_pub.publish(
                predicate_reward_msg(success, stamp, self.driver.frame_id, self.driver.stage)
            )
        return result is not False

    def _on_reset(self, request: Reset.Request, response: Reset.Response) -> Reset.Response:
        try:
            seed, instruction = self.driver.reset(request.task, request.seed, request.stage)
        except Exception as exc:  # unknown task or a model that does not build: the caller must know why
            self.get_logger().error(f"reset to {request.task!r} stage {request.stage} failed: {exc}")
            response.success, response.message, response.seed = False, str(exc), request.seed
            return response
        self._latest = None  # a command of the previous episode must not move the new one
        if self._tick_timer is None:
            self.publish_state()
        else:  # realtime: the episode's first observation goes out on the stream's grid, at the next tick
            self._reset_pending = True
        response.success, response.seed, response.instruction = True, seed, instruction
        response.message = f"{self.driver.task_name} episode {self.driver.episode_id} (seed {seed})"
        self.get_logger().info(f"reset: {response.message}")
        return response

    def _log_rejected(self) -> None:
        stats = self.driver.stats
        self.get_logger().warning(
            f"rejected command ({stats.rejected} so far): {stats.last_reject_reason}; the arm holds",
            throttle_duration_sec=1.0,
        )

    # ------------------------------------------------------------------ publishing

    def publish_state(self) -> None:
        """Publish the driver's current state on every topic with one sim-time stamp."""
        driver = self.driver
        stamp = nanoseconds_to_time(driver.sim_time_ns)
        if self._clock_pub is not None:
            self._clock_pub.publish(clock_msg(stamp))
        self._joint_pub.publish(joint_state_to_msg(driver.joint_names, *driver.joint_state(), stamp=stamp))
        msg = observation_to_msg(
            driver.observation, driver.proprio_names, stamp, driver.frame_id, driver.episode_id, driver.step
        )
        for name, image in zip(msg.camera_names, msg.images, strict=True):
            self._camera_pub(name).publish(image)
        self._observation_pub.publish(msg)

    def _camera_pub(self, name: str) -> Publisher:
        if name not in self._camera_pubs:
            self._camera_pubs[name] = self.create_publisher(Image, f"camera/{name}/image_raw", IMAGE_QOS)
        return self._camera_pubs[name]

    def publish_status(self) -> None:
        """Counters and episode state as JSON on `sim_status` (no diagnostic_msgs wheel on PyPI)."""
        self._status_pub.publish(String(data=json.dumps(self.driver.status())))

    def destroy_node(self) -> None:
        self.driver.close()
        super().destroy_node()


def _sleep_until(monotonic_s: float | None) -> None:
    if monotonic_s is not None and (wait := monotonic_s - time.monotonic()) > 0:
        time.sleep(wait)


def main(args: list[str] | None = None) -> int:
    """Entry point of `python -m pld_sim.ros.sim_node` (and the `sim_node` console script)."""
    return spin_node(SimNode, "sim_node", args)


if __name__ == "__main__":
    sys.exit(main())
