"""The residual actor node: a 20 Hz timer turns the newest observation and the current action chunk into a
safe, provenance-tagged `command`.

Thin: callbacks convert messages (`actor_conversions`) and hand them to the `ResidualActor` core, which
indexes the chunk by time, runs the residual policy and the safety combiner (`pld_residual.actor.safety`:
e-stop, watchdog on stale observations and chunks, NaN/inf guard, per-step clip, workspace box). Every
intervention is counted on the latched `actor_status` topic. Parameters come from `checkpoint` at start
and from `policy_params` (applied only for a higher version; a bad blob is counted and the old
parameters stay, as they do when the learner goes away). Without parameters the base passes through.

The timer runs on the node clock: wall time, or sim time with `use_sim_time:=true` (then the stamps of
observations and chunks are sim time too, and the watchdog compares like with like). With
`trigger:=observation` (lockstep simulation) there is no control timer: each new observation gets one
command as soon as a chunk covers its step (within `execute_steps` rows of the chunk), or after
`watchdog_s` of wall time with whatever the safety combiner makes of the inputs then (a hold when the
VLA is gone); with `wait_for_chunk:=false` (realtime) at once, a hold when no chunk covers it yet.

Episodes: once the episode manager publishes `episode` events, the actor commands only inside episodes
and lets the residual act from the step T_base of the event on (`actor.episode_gate`).

Topics and services (relative to the node's namespace):
  sub  observation     pld_interfaces/Observation   reliable, keep last 1 (newest wins)
  sub  action_chunk    pld_interfaces/ActionChunk   reliable, keep last 1 (newest wins)
  sub  policy_params   pld_interfaces/PolicyParams  reliable, transient local, depth 1 (latched)
  sub  episode         pld_interfaces/EpisodeEvent  reliable, keep last 100
  pub  command         pld_interfaces/ActionCommand reliable, keep last 10
  pub  actor_status    std_msgs/String (JSON)       reliable, transient local, depth 1
  srv  estop           std_srvs/SetBool             true: hold until released with false

Run: `python -m pld_residual.ros.residual_actor_node --ros-args -p checkpoint:=runs/.../policy`
"""

from __future__ import annotations

import json
import sys
import time

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import SetBool

from pld_interfaces.msg import ActionChunk, ActionCommand, EpisodeEvent, Observation, PolicyParams
from pld_residual.actor.config import ResidualActorConfig
from pld_residual.actor.core import ParamsOutcome, Policy, ResidualActor, load_checkpoint
from pld_residual.actor.safety import Intervention, Provenance
from pld_residual.ros.actor_conversions import (
    actor_step_to_msg,
    chunk_input_from_msg,
    observation_input_from_msg,
)
from pld_sim.ros.conversions import nanoseconds_to_time, time_to_nanoseconds
from pld_sim.ros.node_main import spin_node
from pld_sim.ros.parameters import declare_config

# Depth 1: only the newest observation and chunk matter to a control step.
OBSERVATION_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
CHUNK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# Latched: an actor (re)started after the learner's last publication still gets the newest parameters.
# The learner must publish with this profile (a volatile publisher does not match it).
PARAMS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # = the sim node's
EPISODE_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # = the episode manager's
# Latched: a late `ros2 topic echo`, test or episode manager still sees readiness and the counters.
STATUS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
# Hold reasons that say "waiting for inputs / stopped", logged once per change instead of per step.
_WAITING = (Intervention.ESTOP, Intervention.STALE_OBSERVATION, Intervention.STALE_CHUNK)


def config_from_parameters(node: Node, defaults: ResidualActorConfig | None = None) -> ResidualActorConfig:
    """Declare one read-only ROS parameter per config field and build the validated config from them.

    The only place where ROS parameters map to `ResidualActorConfig`. `agent_options` is a JSON object
    string (ROS parameters have no dict type); float fields accept integers. Raises ValueError.
    """
    return ResidualActorConfig.from_dict(declare_config(node, ResidualActorConfig, defaults))


class ResidualActorNode(Node):
    """Publishes one command per control period; see the module docstring."""

    def __init__(
        self,
        cfg: ResidualActorConfig | None = None,
        *,
        policy: Policy | None = None,
        node_name: str = "residual_actor",
        **kwargs,
    ) -> None:
        super().__init__(node_name, **kwargs)
        self.cfg = config_from_parameters(self, cfg)
        if policy is None:
            policy = load_checkpoint(self.cfg)  # ValueError for a directory that is not a saved policy
        self.actor = ResidualActor(self.cfg, policy)
        self.actor.warm_up()
        self._held_for: tuple[Intervention, ...] = ()
        self._command_pub = self.create_publisher(ActionCommand, "command", COMMAND_QOS)
        self._status_pub = self.create_publisher(String, "actor_status", STATUS_QOS)
        self.create_subscription(Observation, "observation", self.on_observation, OBSERVATION_QOS)
        self.create_subscription(ActionChunk, "action_chunk", self.on_chunk, CHUNK_QOS)
        if self.cfg.params_topic_enabled:
            self.create_subscription(PolicyParams, "policy_params", self.on_params, PARAMS_QOS)
        self.create_subscription(EpisodeEvent, "episode", self.on_episode, EPISODE_QOS)
        self.create_service(SetBool, "estop", self._on_estop)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # status keeps coming when sim time stands still
        self._pending_since: float | None = None  # observation trigger: wall time the newest obs arrived
        if self.cfg.trigger == "timer":
            self.create_timer(self.cfg.period_s, self.on_tick)  # node clock: sim time with use_sim_time
        else:
            self.create_timer(self.cfg.watchdog_s / 4, self._act_on_observation, clock=steady)
        self.create_timer(self.cfg.status_period_s, self.publish_status, clock=steady)
        self.publish_status()
        if self.cfg.checkpoint:
            source = f"checkpoint {self.cfg.checkpoint}"
        else:
            source = "a given policy" if policy is not None else "no policy yet (base passes)"
        self.get_logger().info(
            f"residual actor at {self.cfg.rate_hz:g} Hz, xi {self.cfg.xi:g}, "
            f"watchdog {self.cfg.watchdog_s:g} s, {source}"
        )

    # ------------------------------------------------------------------ callbacks

    def on_observation(self, msg: Observation) -> None:
        """Subscription callback of `observation` (public so in-process compositions can call it)."""
        try:
            self.actor.set_observation(observation_input_from_msg(msg))
        except ValueError as exc:
            self._reject("observation", str(exc))
            return
        if self.cfg.trigger == "observation":
            if self._pending_since is None:  # a newer observation replaces a waiting one, not its deadline
                self._pending_since = time.monotonic()
            self._act_on_observation()

    def on_chunk(self, msg: ActionChunk) -> None:
        """Subscription callback of `action_chunk`."""
        try:
            self.actor.set_chunk(chunk_input_from_msg(msg))
        except ValueError as exc:
            self._reject("chunk", str(exc))
            return
        if self.cfg.trigger == "observation":
            self._act_on_observation()

    def on_episode(self, msg: EpisodeEvent) -> None:
        """Subscription callback of `episode`: act inside episodes, the residual from step T_base."""
        self.actor.set_episode(int(msg.phase), int(msg.t_base), time_to_nanoseconds(msg.header.stamp))
        if self.cfg.trigger == "observation":
            self._act_on_observation()

    def _reject(self, kind: str, reason: str) -> None:
        self.actor.reject_input(kind, reason)
        self.get_logger().warning(f"dropped an invalid {kind}: {reason}", throttle_duration_sec=1.0)

    def on_params(self, msg: PolicyParams) -> None:
        """Subscription callback of `policy_params`: newer versions only; bad blobs keep the old ones."""
        current = self.actor.params_version
        outcome = self.actor.apply_params(msg.version, msg.num_updates, msg.format, bytes(msg.blob))
        log = self.get_logger()
        if outcome is ParamsOutcome.APPLIED:
            log.info(f"policy parameters version {msg.version} applied ({msg.num_updates} updates)")
        elif outcome is ParamsOutcome.PENDING:
            log.info(f"policy parameters version {msg.version} wait for the first observation and chunk")
        elif outcome is ParamsOutcome.IGNORED:
            log.warning(f"ignored policy parameters version {msg.version} (current {current})")
        else:
            log.error(f"{self.actor.last_error}; keeping version {current}")
        self.publish_status()

    def _on_estop(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        changed = self.actor.set_estop(bool(request.data))
        state = "engaged: holding" if request.data else "released"
        if changed:
            if request.data:  # two call sites: rclpy refuses one call site with two severities
                self.get_logger().warning(f"e-stop {state}")
            else:
                self.get_logger().info(f"e-stop {state}")
            self.publish_status()
        response.success, response.message = True, f"e-stop {state}"
        return response

    def on_tick(self) -> None:
        """Timer callback: one control step, one command (none between episodes)."""
        if not self.actor.may_act():
            return
        now = self.get_clock().now().nanoseconds
        step = self.actor.tick(now, time.monotonic_ns())
        self._command_pub.publish(actor_step_to_msg(step, nanoseconds_to_time(now)))
        self._log_transitions(step.provenance, step.interventions)

    def _act_on_observation(self) -> None:
        """Observation trigger: command the waiting observation once a chunk covers it, or at the watchdog."""
        obs = self.actor.observation
        if self._pending_since is None or obs is None or not self.actor.may_act(obs):
            return
        now = self.actor.covering_time(obs)
        waiting = time.monotonic() - self._pending_since < self.cfg.watchdog_s
        if now is None and self.cfg.wait_for_chunk and waiting:
            return  # the VLA's chunk for this step is still coming
        now = obs.stamp_ns if now is None else now  # no chunk covers it: the combiner decides (a hold)
        self._pending_since = None
        step = self.actor.tick(now, time.monotonic_ns())
        self._command_pub.publish(actor_step_to_msg(step, nanoseconds_to_time(now)))
        self._log_transitions(step.provenance, step.interventions)

    def _log_transitions(self, provenance: Provenance, interventions: tuple[Intervention, ...]) -> None:
        """Log a hold when its reason changes (not every step); errors at most once a second."""
        held_for = interventions if provenance is Provenance.HOLD else ()
        log = self.get_logger()
        if held_for != self._held_for:
            if held_for:
                log.warning(f"holding: {', '.join(i.value for i in held_for)}")
            else:
                log.info(f"commanding again ({provenance.name.lower()})")
            self._held_for = held_for
            self.publish_status()
        if held_for and held_for[-1] not in _WAITING:
            reason = held_for[-1]
            detail = f": {self.actor.last_error}" if reason is Intervention.POLICY_ERROR else ""
            log.error(f"held a command: {reason.value}{detail}", throttle_duration_sec=1.0)

    def publish_status(self) -> None:
        """Readiness, parameter version, counters and loop timing as JSON on `actor_status`."""
        self._status_pub.publish(String(data=json.dumps(self.actor.status())))


def main(args: list[str] | None = None) -> int:
    """Entry point of `python -m pld_residual.ros.residual_actor_node` (and the `residual_actor` script)."""
    return spin_node(ResidualActorNode, "residual_actor", args)


if __name__ == "__main__":
    sys.exit(main())
