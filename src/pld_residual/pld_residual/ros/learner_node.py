"""The learner node: rebuilds every finished episode of the graph into transitions, trains the residual
agent of `pld learn` on them and publishes its actor as versioned `policy_params`.

Thin: messages go to `graph_transitions.EpisodeCollector`, which keeps every open episode and hands one out,
rebuilt, once all its messages are in; it is then handed to `learner_service.GraphLearner`, which owns the
replay buffers, the jitted updates and the checkpoints. The learner works on a thread of its own (episodes
in, owed update calls, publications, checkpoints), so a long jit compilation never stalls the subscriptions:
a reliable topic whose reader falls more than its publisher's history behind loses messages. It publishes
parameters every `publish_every_updates` gradient steps (latched: an actor that starts later still gets
them; it keeps the last ones if the learner goes away) and checkpoints. It can run in the graph's process,
its own, or on another machine (`launch/remote_learner.launch.py`); restarting it with the same `out_dir`
resumes.

Topics (relative to the node's namespace):
  sub  episode         pld_interfaces/EpisodeEvent  reliable, keep last 100
  sub  observation     pld_interfaces/Observation   reliable, keep last 100 (proprio, stamp, step)
  sub  action_chunk    pld_interfaces/ActionChunk   reliable, keep last 100
  sub  command         pld_interfaces/ActionCommand reliable, keep last 100
  sub  reward          pld_interfaces/Reward        reliable, keep last 100
  pub  policy_params   pld_interfaces/PolicyParams  reliable, transient local, depth 1
  pub  learner_status  std_msgs/String (JSON)       reliable, transient local, depth 1

Run: `python -m pld_residual.ros.learner_node --ros-args \
         -p learn_config:=src/pld_residual/config/learn_pick_cube.yaml -p out_dir:=runs/graph-learn`
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from pld_interfaces.msg import ActionChunk, ActionCommand, EpisodeEvent, Observation, PolicyParams, Reward
from pld_residual.episodes.machine import END_ABORT, PHASE_DONE, PHASE_RESET
from pld_residual.learning.graph_transitions import ChunkRecord, CommandRecord, EpisodeCollector
from pld_residual.learning.learner_service import GraphLearner, LearnerNodeConfig
from pld_sim.ros.conversions import nanoseconds_to_time, time_to_nanoseconds
from pld_sim.ros.node_main import spin_node
from pld_sim.ros.parameters import declare_config

INPUT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # a whole episode must arrive
LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
TICK_S = 0.05
FINISH_TIMEOUT_S = 10.0  # wall time after DONE after which an episode is rebuilt with what arrived
RECENT = 2000  # messages kept for an episode whose RESET event arrives after its first messages


def config_from_parameters(node: Node, defaults: LearnerNodeConfig | None = None) -> LearnerNodeConfig:
    """The only place where ROS parameters map to `LearnerNodeConfig`. Raises ValueError."""
    return LearnerNodeConfig.from_dict(declare_config(node, LearnerNodeConfig, defaults))


class LearnerNode(Node):
    """Trains the residual on the graph's episodes; see the module docstring."""

    def __init__(self, cfg: LearnerNodeConfig | None = None, *, node_name: str = "learner", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.cfg = config_from_parameters(self, cfg)
        self.learner = GraphLearner(self.cfg)
        self.time_limit = _time_limit(self.learner.learn, self.cfg.control_hz)
        self.collector = EpisodeCollector(self.cfg.period_ns, self.cfg.action_high, FINISH_TIMEOUT_S, RECENT)
        self._params_pub = self.create_publisher(PolicyParams, "policy_params", LATCHED_QOS)
        self._status_pub = self.create_publisher(String, "learner_status", LATCHED_QOS)
        self.create_subscription(EpisodeEvent, "episode", self.on_event, INPUT_QOS)
        self.create_subscription(Observation, "observation", self.on_observation, INPUT_QOS)
        self.create_subscription(ActionChunk, "action_chunk", self.on_chunk, INPUT_QOS)
        self.create_subscription(ActionCommand, "command", self.on_command, INPUT_QOS)
        self.create_subscription(Reward, "reward", self.on_reward, INPUT_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(TICK_S, self._finish_ready, clock=steady)
        self._episodes: queue.Queue = queue.Queue()  # (steps, t_base, warmup, success) for the worker
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="learner", daemon=True)
        self.create_timer(self.cfg.status_period_s, self.publish_status, clock=steady)
        if self.learner.ready:
            self._publish_params()  # resumed: the actor gets the checkpoint's actor at once
        self.publish_status()
        self._worker.start()
        resumed = f", resumed at {self.learner.counters.env_steps} env steps" if self.learner.ready else ""
        self.get_logger().info(
            f"learner: {self.learner.learn.task} {self.learner.learn.method} -> {self.learner.out}{resumed}"
        )

    # ------------------------------------------------------------------ inputs

    def on_event(self, msg: EpisodeEvent) -> None:
        stamp = time_to_nanoseconds(msg.header.stamp)
        if msg.phase == PHASE_RESET:
            self.collector.reset(int(msg.episode_id), stamp, int(msg.t_base))
        elif msg.phase == PHASE_DONE:
            aborted = msg.end_reason == END_ABORT
            self.collector.done(
                int(msg.episode_id), stamp, int(msg.step), bool(msg.success), aborted, time.monotonic()
            )

    def _add(self, kind: str, *record) -> None:
        self.collector.add(kind, *record)

    def on_observation(self, msg: Observation) -> None:
        proprio = np.asarray(msg.proprio, np.float32)
        self._add("observation", time_to_nanoseconds(msg.header.stamp), int(msg.step), proprio)

    def on_chunk(self, msg: ActionChunk) -> None:
        if msg.action_dim < 1 or len(msg.actions) != msg.horizon * msg.action_dim:
            return  # malformed: the actor refuses it too
        actions = np.asarray(msg.actions, np.float32).reshape(msg.horizon, msg.action_dim)
        features = np.asarray(msg.features, np.float32)
        self._add("chunk", ChunkRecord(time_to_nanoseconds(msg.header.stamp), actions, features))

    def on_command(self, msg: ActionCommand) -> None:
        command = np.asarray(msg.command, np.float32)
        stamp = time_to_nanoseconds(msg.header.stamp)
        self._add("command", CommandRecord(stamp, int(msg.step), command, int(msg.provenance)))

    def on_reward(self, msg: Reward) -> None:
        self._add("reward", time_to_nanoseconds(msg.header.stamp), bool(msg.success))

    # ------------------------------------------------------------------ learning

    def _finish_ready(self) -> None:
        """Hand every episode whose messages are all in to the learner thread."""
        for episode in self.collector.finished(time.monotonic()):
            if episode.steps.problem:
                self.get_logger().warning(
                    f"episode {episode.episode_id} not learnt from: {episode.steps.problem}"
                )
            warmup = episode.t_base >= self.time_limit
            self._episodes.put((episode.steps, episode.t_base, warmup, episode.success))

    def _work(self) -> None:
        """The learner thread: episodes into replay, owed update calls, publications, checkpoints."""
        while not self._stop.is_set():
            busy = False
            try:
                while True:
                    steps, t_base, warmup, success = self._episodes.get_nowait()
                    self.learner.add_episode(steps, t_base, self.time_limit, warmup, success)
                    busy = True
            except queue.Empty:
                pass
            try:
                busy = self.learner.run_updates(self.cfg.max_update_calls_per_tick) > 0 or busy
                if self.learner.params_due():
                    self._publish_params()
                if self.learner.checkpoint_due():
                    self.learner.checkpoint()
            except Exception as exc:  # seen in the log and on learner_status; the thread goes on
                self.learner.last_error = f"{type(exc).__name__}: {exc}"
                self.get_logger().error(f"learner: {self.learner.last_error}", throttle_duration_sec=5.0)
                self._stop.wait(1.0)
            if not busy:
                self._stop.wait(0.01)

    def _publish_params(self) -> None:
        version, updates, fmt, blob = self.learner.params_blob()
        msg = PolicyParams(version=version, num_updates=updates, format=fmt)
        msg.header.stamp = nanoseconds_to_time(self.get_clock().now().nanoseconds)
        msg.blob = blob  # bytes -> uint8[] without a per-element conversion
        self._params_pub.publish(msg)

    def publish_status(self) -> None:
        status = {**self.learner.status(), "episodes_aborted": self.collector.aborted}
        self._status_pub.publish(String(data=json.dumps(status)))

    def destroy_node(self) -> None:
        """Stop the learner thread and checkpoint, so a restart with the same out_dir resumes."""
        self._stop.set()
        self._worker.join(timeout=60.0)
        try:
            self.learner.checkpoint()
        except Exception as exc:  # shutting down anyway: say so
            self.get_logger().error(f"final checkpoint failed: {exc}")
        super().destroy_node()


def _time_limit(learn, control_hz: float) -> int:
    from pld_sim.tasks import TASKS

    limit_s = learn.time_limit_s or TASKS[learn.task].time_limit_s
    return round(limit_s * control_hz)


def main(args: list[str] | None = None) -> int:
    """Entry point of `python -m pld_residual.ros.learner_node` (and the `learner` script)."""
    return spin_node(LearnerNode, "learner", args)


if __name__ == "__main__":
    sys.exit(main())
