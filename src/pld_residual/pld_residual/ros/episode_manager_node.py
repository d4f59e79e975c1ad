"""The episode manager node: resets the robot (or sim) through its `reset` service and runs the episode
state machine of `pld_residual.episodes.machine`: reset -> probing (T_base) -> residual -> done.

Thin: callbacks hand stamps, steps, rewards and command provenance to `EpisodeMachine` and carry out the
effects it returns (publish an `EpisodeEvent`, call `reset`, finish a `run_episodes` goal). The actor
reads T_base from the events and lets the residual act from that step; the recorder cuts bags at them.

An episode starts at the first observation of the new reset (the driver's `Observation.episode_id`
changes at a reset) once the service has answered; it ends on a `reward` with success, at the time limit,
or aborted when no non-hold `command` came for `abort_after_hold_s` (wall clock): a dead VLA server or
actor, an e-stop. Aborted episodes do not count. Episodes start only while the VLA server's latched
`vla_status` says ready and is fresh (it is republished every second; `vla_status_timeout_s`), so a
batch waits while the VLA loads or is down, and resumes by itself when it is back.

Topics, services and actions (relative to the node's namespace):
  sub  observation     pld_interfaces/Observation   reliable, keep last 10 (stamp, step, episode id)
  sub  reward          pld_interfaces/Reward        reliable, keep last 10
  sub  command         pld_interfaces/ActionCommand reliable, keep last 10 (provenance: alive or holding)
  sub  vla_status      std_msgs/String (JSON)       reliable, transient local, depth 1 (ready?)
  pub  episode         pld_interfaces/EpisodeEvent  reliable, keep last 100
  pub  instruction     std_msgs/String              reliable, transient local, depth 1 (for the VLA)
  pub  episode_status  std_msgs/String (JSON)       reliable, transient local, depth 1
  cli  reset           pld_interfaces/Reset
  act  run_episodes    pld_interfaces/RunEpisodes   one batch at a time; cancel aborts the episode

With `num_episodes > 0` a batch of that many starts as soon as the reset service is there.

Run: `python -m pld_residual.ros.episode_manager_node --ros-args -p num_episodes:=10 -p mode:=eval`
"""

from __future__ import annotations

import json
import sys
import time

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from std_msgs.msg import String

from pld_interfaces.action import RunEpisodes
from pld_interfaces.msg import ActionCommand, EpisodeEvent, Observation, Reward
from pld_interfaces.srv import Reset
from pld_residual.episodes.config import EpisodeManagerConfig
from pld_residual.episodes.machine import (
    MODE_IDS,
    BatchResult,
    Effect,
    EpisodeMachine,
    Event,
    ResetRequest,
)
from pld_sim.ros.conversions import nanoseconds_to_time, time_to_nanoseconds
from pld_sim.ros.node_main import spin_node
from pld_sim.ros.parameters import declare_config

INPUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
EVENT_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # no phase change may be lost
LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
POLL_PERIOD_S = 0.05
MODE_NAMES = {value: name for name, value in MODE_IDS.items()}


def config_from_parameters(node: Node, defaults: EpisodeManagerConfig | None = None) -> EpisodeManagerConfig:
    """The only place where ROS parameters map to `EpisodeManagerConfig`. Raises ValueError."""
    return EpisodeManagerConfig.from_dict(declare_config(node, EpisodeManagerConfig, defaults))


def event_to_msg(event: Event) -> EpisodeEvent:
    """machine.Event -> pld_interfaces/EpisodeEvent (pure)."""
    msg = EpisodeEvent()
    msg.header.stamp = nanoseconds_to_time(event.stamp_ns)
    msg.episode_id, msg.phase, msg.t_base, msg.step = event.episode_id, event.phase, event.t_base, event.step
    msg.seed, msg.success, msg.end_reason = event.seed, event.success, event.end_reason
    msg.task, msg.instruction = event.task, event.instruction
    return msg


class EpisodeManagerNode(Node):
    """Runs episodes over the graph; see the module docstring."""

    def __init__(
        self, cfg: EpisodeManagerConfig | None = None, *, node_name: str = "episode_manager", **kwargs
    ) -> None:
        super().__init__(node_name, **kwargs)
        self.cfg = config_from_parameters(self, cfg)
        self.cfg.resolved_time_limit()  # an unknown task stops the node at start-up
        self.machine = EpisodeMachine(self.cfg)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._newest_obs: tuple[int, int, int] | None = None  # driver episode id, step, stamp
        self._pre_reset_episode: int | None = None
        self._reset_answer: tuple[bool, int, str, str] | None = None  # ok, seed, instruction, message
        self._goal_future: Future | None = None
        self._goal_handle = None
        self._autostart_pending = self.cfg.num_episodes > 0
        self.last_result: BatchResult | None = None
        self._event_pub = self.create_publisher(EpisodeEvent, "episode", EVENT_QOS)
        self._instruction_pub = self.create_publisher(String, "instruction", LATCHED_QOS)
        self._status_pub = self.create_publisher(String, "episode_status", LATCHED_QOS)
        self.create_subscription(Observation, "observation", self.on_observation, INPUT_QOS)
        self.create_subscription(Reward, "reward", self.on_reward, INPUT_QOS)
        self.create_subscription(ActionCommand, "command", self.on_command, INPUT_QOS)
        self._vla_ready_at: float | None = None  # wall time of the newest vla_status saying ready
        if self.cfg.vla_status_timeout_s > 0:
            self.machine.set_inputs_ready(False)
            self.create_subscription(String, "vla_status", self.on_vla_status, LATCHED_QOS)
        self._reset_client = self.create_client(Reset, "reset")
        self._action = ActionServer(
            self, RunEpisodes, "run_episodes", execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=lambda _goal: CancelResponse.ACCEPT,
        )  # fmt: skip
        self.create_timer(POLL_PERIOD_S, self._poll, clock=self._steady)
        self.create_timer(self.cfg.status_period_s, self.publish_status, clock=self._steady)
        self.publish_status()
        limit = self.cfg.resolved_time_limit()
        start = (
            f"{self.cfg.num_episodes} episodes at start" if self._autostart_pending else "waiting for goals"
        )
        self.get_logger().info(
            f"episode manager: {self.cfg.task} {self.cfg.mode}, time limit {limit} steps, "
            f"alpha {self.cfg.probing_alpha:g}, warm-up {self.cfg.warmup_episodes}; {start}"
        )

    # ------------------------------------------------------------------ inputs

    def _now(self) -> float:
        return time.monotonic()

    def on_observation(self, msg: Observation) -> None:
        stamp = time_to_nanoseconds(msg.header.stamp)
        self._newest_obs = (int(msg.episode_id), int(msg.step), stamp)
        if self._reset_answer is not None:
            self._try_start()
            return
        self._apply(self.machine.on_observation(int(msg.step), stamp, self._now()))

    def on_reward(self, msg: Reward) -> None:
        self._apply(
            self.machine.on_reward(bool(msg.success), time_to_nanoseconds(msg.header.stamp), self._now())
        )

    def on_command(self, msg: ActionCommand) -> None:
        self.machine.on_command(int(msg.provenance), self._now())

    def on_vla_status(self, msg: String) -> None:
        try:
            ready = bool(json.loads(msg.data).get("ready"))
        except (ValueError, AttributeError):
            ready = False
        self._vla_ready_at = self._now() if ready else None

    def _poll(self) -> None:
        if self.cfg.vla_status_timeout_s > 0:
            fresh = (
                self._vla_ready_at is not None
                and self._now() - self._vla_ready_at < self.cfg.vla_status_timeout_s
            )
            self.machine.set_inputs_ready(fresh)
        if self._autostart_pending and self._reset_client.service_is_ready():
            self._autostart_pending = False
            self._start_batch(self.cfg.num_episodes)
        self._apply(self.machine.poll(self._now()))

    # ------------------------------------------------------------------ effects

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Event):
                self._publish_event(effect)
            elif isinstance(effect, ResetRequest):
                self._call_reset(effect)
            elif isinstance(effect, BatchResult):
                self._finish_batch(effect)
        if effects:
            self.publish_status()

    def _publish_event(self, event: Event) -> None:
        self._event_pub.publish(event_to_msg(event))
        if self._goal_handle is not None:
            batch = self.machine.batch
            feedback = RunEpisodes.Feedback(
                episode_id=event.episode_id, phase=event.phase, step=event.step,
                episodes_done=0 if batch is None else batch.done,
                successes=0 if batch is None else batch.successes,
            )  # fmt: skip
            self._goal_handle.publish_feedback(feedback)
        if event.phase == EpisodeEvent.PHASE_DONE:
            outcome = (
                "success" if event.success else {2: "time limit", 3: "aborted"}.get(event.end_reason, "?")
            )
            self.get_logger().info(
                f"episode {event.episode_id} (seed {event.seed}, T_base {event.t_base}): {outcome} "
                f"after {event.step} steps"
            )

    def _call_reset(self, request: ResetRequest) -> None:
        self._pre_reset_episode = None if self._newest_obs is None else self._newest_obs[0]
        self._reset_answer = None
        future = self._reset_client.call_async(
            Reset.Request(task=request.task, seed=request.seed, stage=request.stage)
        )
        future.add_done_callback(self._on_reset_answer)

    def _on_reset_answer(self, future: Future) -> None:
        try:
            response = future.result()
        except Exception as exc:  # the service went away mid-call: a timeout retries it
            self.get_logger().error(f"reset call failed: {exc}")
            return
        if response is None:
            return
        self._reset_answer = (
            bool(response.success),
            int(response.seed),
            response.instruction,
            response.message,
        )
        if not response.success:
            self._reset_answer = None
            self._apply(self.machine.on_reset(False, 0, "", 0, self._now(), response.message))
            return
        self._instruction_pub.publish(String(data=response.instruction))
        self._try_start()

    def _try_start(self) -> None:
        """Start the episode at the first observation of the new reset (the driver's episode id changed)."""
        newest = self._newest_obs
        if self._reset_answer is None or newest is None:
            return
        episode_id, step, stamp = newest
        if episode_id == self._pre_reset_episode or step != 0:
            return
        ok, seed, instruction, message = self._reset_answer
        self._reset_answer = None
        self._apply(self.machine.on_reset(ok, seed, instruction, stamp, self._now(), message))

    # ------------------------------------------------------------------ batches

    def _start_batch(self, num_episodes: int, **options) -> None:
        self.last_result = None
        self._apply(self.machine.start_batch(num_episodes, now_s=self._now(), **options))

    def _finish_batch(self, result: BatchResult) -> None:
        self.last_result = result
        self.get_logger().info(f"batch {result.message} ({result.success_rate:.0%} success)")
        if self._goal_future is not None and not self._goal_future.done():
            self._goal_future.set_result(result)

    def _on_goal(self, goal: RunEpisodes.Goal) -> GoalResponse:
        if self.machine.batch is not None:
            self.get_logger().warning("run_episodes refused: a batch is running")
            return GoalResponse.REJECT
        if goal.num_episodes < 1 or goal.mode not in MODE_NAMES:
            self.get_logger().warning(
                f"run_episodes refused: num_episodes {goal.num_episodes}, mode {goal.mode}"
            )
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute(self, goal_handle) -> RunEpisodes.Result:
        goal = goal_handle.request
        self._goal_handle, self._goal_future = goal_handle, Future()
        try:
            self._start_batch(
                int(goal.num_episodes), mode=MODE_NAMES[goal.mode], seed=int(goal.seed), task=goal.task,
                stage=int(goal.stage),
            )  # fmt: skip
        except ValueError as exc:
            self._goal_handle = None
            goal_handle.abort()
            return RunEpisodes.Result(message=str(exc))
        while not self._goal_future.done():
            if goal_handle.is_cancel_requested:
                self._apply(self.machine.cancel(self._now()))
                break
            await _sleep(self, 0.05, self._steady)
        result = self._goal_future.result() if self._goal_future.done() else self.last_result
        self._goal_handle = None
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.succeed()
        if result is None:
            return RunEpisodes.Result(message="cancelled")
        return RunEpisodes.Result(
            episodes_run=result.episodes_run, successes=result.successes,
            success_rate=result.success_rate, message=result.message,
        )  # fmt: skip

    def publish_status(self) -> None:
        status = self.machine.status()
        if self.last_result is not None:
            status["last_batch"] = self.last_result.message
        self._status_pub.publish(String(data=json.dumps(status)))

    def destroy_node(self) -> None:
        if self.context.ok():  # after Ctrl-C the context is gone; the recorder closes the open bag itself
            self._apply(self.machine.cancel(self._now()))  # the open episode ends aborted, on the record
        self._action.destroy()
        super().destroy_node()


async def _sleep(node: Node, seconds: float, clock: Clock) -> None:
    """Yield to the executor for `seconds` without blocking it (rclpy has no asyncio sleep).

    `clock` must be a wall clock: on the node's own clock (sim time with `use_sim_time`) the sleep never
    ends once a lockstep sim stops stepping, and the goal's result was never sent."""
    future = Future()
    timer = node.create_timer(seconds, lambda: future.done() or future.set_result(None), clock=clock)
    try:
        await future
    finally:
        node.destroy_timer(timer)


def main(args: list[str] | None = None) -> int:
    """Entry point of `python -m pld_residual.ros.episode_manager_node` (and `episode_manager`)."""
    return spin_node(EpisodeManagerNode, "episode_manager", args)


if __name__ == "__main__":
    sys.exit(main())
