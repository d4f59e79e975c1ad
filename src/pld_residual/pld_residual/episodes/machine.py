"""The episode state machine of the episode manager node, without ROS: feed it what the graph says, carry
out the effects it returns.

One episode: RESET (the Reset service answered; stamped with the first observation after it) -> PROBING
(`T_base` base-only steps; skipped when T_base is 0) -> RESIDUAL (the residual takes over at the
observation whose step is T_base) -> DONE, by success (a `reward` with success for an observation of this
episode), by the time limit (the observation after the last allowed command) or by abort (no non-hold
command for `abort_after_hold_s` of wall time: a dead VLA server or actor, an e-stop). Aborted episodes do
not count towards a batch. A reset is requested only while the inputs are ready (`set_inputs_ready`: the
node says whether the VLA server reports ready); otherwise the machine waits, so a batch resumes by itself
when the VLA comes back instead of aborting one empty episode after another.

Who drives which step follows `pld_residual.replay.probing` (the same schedule as `pld learn` and
`pld collect`): train mode starts with `warmup_episodes` base-only episodes, then draws T_base; collect
mode draws T_base; eval mode lets the residual act from step 0. The actor reads T_base from the PROBING /
RESIDUAL event, so the hand-over step does not depend on message timing.

Two clocks: stamps (the graph's clock, sim time in simulation) for events, and a monotonic wall clock
(`now_s`) for the abort and reset timeouts, which must fire when sim time stands still.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from pld_residual.episodes.config import EpisodeManagerConfig
from pld_residual.replay.probing import EpisodePlan, ProbingConfig

PHASE_RESET, PHASE_PROBING, PHASE_RESIDUAL, PHASE_DONE = 0, 1, 2, 3  # EpisodeEvent.PHASE_*
END_NONE, END_SUCCESS, END_TIME_LIMIT, END_ABORT = 0, 1, 2, 3  # EpisodeEvent.END_*
PROVENANCE_HOLD = 3  # ActionCommand.PROVENANCE_HOLD
MODE_IDS = {"train": 0, "collect": 1, "eval": 2}  # RunEpisodes.Goal.MODE_*


class State(enum.StrEnum):
    IDLE = "idle"  # no batch
    WAITING = "waiting"  # a reset is due, the inputs are not ready
    RESETTING = "resetting"  # waiting for the Reset service
    RUNNING = "running"  # an episode is on


@dataclass(frozen=True)
class Event:
    """One EpisodeEvent to publish."""

    episode_id: int
    phase: int
    t_base: int
    step: int
    seed: int
    stamp_ns: int
    task: str
    instruction: str
    success: bool = False
    end_reason: int = END_NONE


@dataclass(frozen=True)
class ResetRequest:
    """Call the Reset service with these arguments."""

    task: str
    seed: int
    stage: int


@dataclass(frozen=True)
class BatchResult:
    """A batch of episodes is over (the RunEpisodes result)."""

    episodes_run: int
    successes: int
    aborted: int
    message: str

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes_run if self.episodes_run else 0.0


Effect = Event | ResetRequest | BatchResult


@dataclass
class Batch:
    task: str
    stage: int
    mode: str
    num_episodes: int
    seed: int
    done: int = 0
    successes: int = 0
    aborted: int = 0
    attempts: int = 0  # resets requested, aborted episodes included: seeds advance per attempt


@dataclass
class Episode:
    episode_id: int
    plan: EpisodePlan
    seed: int
    instruction: str
    start_stamp_ns: int
    last_stamp_ns: int
    step: int = 0
    phase: int = PHASE_RESET


@dataclass
class Counters:
    episodes: int = 0  # finished, any end
    successes: int = 0
    time_limits: int = 0
    aborts: int = 0
    reset_failures: int = 0
    reset_timeouts: int = 0
    stale_messages: int = 0  # observations / rewards stamped before the episode began
    by_mode: dict[str, int] = field(default_factory=dict)


class EpisodeMachine:
    """See the module docstring. Not thread-safe: the node calls it from one callback group."""

    def __init__(self, cfg: EpisodeManagerConfig) -> None:
        self.cfg = cfg
        self.state = State.IDLE
        self.batch: Batch | None = None
        self.episode: Episode | None = None
        self.next_episode_id = 1
        self.train_episodes = 0  # train-mode episodes started, for the warm-up schedule
        self.counters = Counters()
        self._rng = np.random.default_rng(cfg.probing_seed)
        self._reset_sent_s = 0.0
        self._last_drive_s = 0.0  # wall time of the newest non-hold command (or of the episode start)
        self.inputs_ready = True

    # ------------------------------------------------------------------ batches

    def start_batch(
        self, num_episodes: int, *, mode: str | None = None, seed: int | None = None, task: str = "",
        stage: int | None = None, now_s: float,
    ) -> list[Effect]:  # fmt: skip
        """Begin `num_episodes` episodes; refused (ValueError) while a batch runs."""
        if self.batch is not None:
            raise ValueError("a batch of episodes is already running")
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
        mode = mode or self.cfg.mode
        if mode not in MODE_IDS:
            raise ValueError(f"mode must be one of {list(MODE_IDS)}, got {mode!r}")
        self.batch = Batch(
            task=task or self.cfg.task,
            stage=self.cfg.stage if stage is None else stage,
            mode=mode,
            num_episodes=num_episodes,
            seed=self.cfg.seed if seed is None else seed,
        )
        self.cfg.resolved_time_limit(self._registry_task())  # unknown task: refuse now, not mid-batch
        return self._next_reset(now_s)

    def set_inputs_ready(self, ready: bool) -> None:
        """Whether the graph can run an episode now (the VLA server reports ready)."""
        self.inputs_ready = bool(ready)

    def _next_reset(self, now_s: float) -> list[Effect]:
        if not self.inputs_ready:
            self.state = State.WAITING
            return []
        return [self._request_reset(now_s)]

    def cancel(self, now_s: float, stamp_ns: int | None = None) -> list[Effect]:
        """Stop the batch: a running episode ends aborted (its bag is finalised)."""
        effects: list[Effect] = []
        if self.episode is not None:
            stamp = stamp_ns or self.episode.last_stamp_ns
            effects += self._finish(END_ABORT, False, stamp, now_s, last=True)
        if self.batch is not None:
            effects.append(self._batch_result("cancelled"))
        return effects

    def _registry_task(self) -> str:
        from pld_sim.sim_driver import resolve_task

        assert self.batch is not None
        return resolve_task(self.batch.task, self.batch.stage)

    def _request_reset(self, now_s: float) -> ResetRequest:
        batch = self.batch
        assert batch is not None
        seed = batch.seed + batch.attempts if batch.seed >= 0 else -1
        batch.attempts += 1
        self.state = State.RESETTING
        self._reset_sent_s = now_s
        return ResetRequest(task=batch.task, seed=seed, stage=batch.stage)

    # ------------------------------------------------------------------ inputs

    def on_reset(
        self, ok: bool, seed: int, instruction: str, stamp_ns: int, now_s: float, message: str = ""
    ) -> list[Effect]:
        """The Reset service answered; `stamp_ns` is the stamp of the first observation after it."""
        if self.state is not State.RESETTING or self.batch is None:
            return []  # an answer to a request that timed out and was replaced
        if not ok:
            self.counters.reset_failures += 1
            return [self._batch_result(f"reset failed: {message}")]
        time_limit = self.cfg.resolved_time_limit(self._registry_task())
        plan = self._plan(time_limit)
        episode = Episode(
            episode_id=self.next_episode_id,
            plan=plan,
            seed=int(seed),
            instruction=instruction,
            start_stamp_ns=int(stamp_ns),
            last_stamp_ns=int(stamp_ns),
        )
        self.next_episode_id += 1
        self.episode = episode
        self.state = State.RUNNING
        self._last_drive_s = now_s
        effects: list[Effect] = [self._event(PHASE_RESET, stamp_ns)]
        episode.phase = PHASE_PROBING if plan.base_steps > 0 else PHASE_RESIDUAL
        effects.append(self._event(episode.phase, stamp_ns))
        return effects

    def _plan(self, time_limit: int) -> EpisodePlan:
        assert self.batch is not None
        mode = self.batch.mode
        if mode == "eval":
            return EpisodePlan(base_steps=0, time_limit_steps=time_limit)
        warmup = self.cfg.warmup_episodes if mode == "train" else 0
        index = self.train_episodes if mode == "train" else warmup  # collect: never a warm-up episode
        if mode == "train":
            self.train_episodes += 1
        return ProbingConfig(self.cfg.probing_alpha, time_limit, warmup).plan(self._rng, index)

    def on_observation(self, step: int, stamp_ns: int, now_s: float) -> list[Effect]:
        """An observation of the robot: hand over at T_base, end at the time limit."""
        episode = self.episode
        if episode is None or self.state is not State.RUNNING:
            return []
        if stamp_ns < episode.start_stamp_ns:
            self.counters.stale_messages += 1
            return []
        episode.step, episode.last_stamp_ns = int(step), max(episode.last_stamp_ns, int(stamp_ns))
        effects: list[Effect] = []
        if episode.phase == PHASE_PROBING and step >= episode.plan.base_steps and not episode.plan.warmup:
            episode.phase = PHASE_RESIDUAL
            effects.append(self._event(PHASE_RESIDUAL, stamp_ns))
        if step >= episode.plan.time_limit_steps:
            effects += self._finish(END_TIME_LIMIT, False, stamp_ns, now_s)
        return effects

    def on_reward(self, success: bool, stamp_ns: int, now_s: float) -> list[Effect]:
        """A reward for an observation: success ends the episode."""
        episode = self.episode
        if episode is None or self.state is not State.RUNNING or not success:
            return []
        if stamp_ns < episode.start_stamp_ns:
            self.counters.stale_messages += 1
            return []
        return self._finish(END_SUCCESS, True, max(stamp_ns, episode.last_stamp_ns), now_s)

    def on_command(self, provenance: int, now_s: float) -> None:
        """A command went to the robot: anything but a hold shows the graph is alive."""
        if provenance != PROVENANCE_HOLD:
            self._last_drive_s = now_s

    def poll(self, now_s: float) -> list[Effect]:
        """Timeouts on the wall clock: abort a stalled episode, retry an unanswered reset."""
        stalled = now_s - self._last_drive_s > self.cfg.abort_after_hold_s
        if self.state is State.RUNNING and self.episode is not None and stalled:
            return self._finish(END_ABORT, False, self.episode.last_stamp_ns, now_s)
        if self.state is State.WAITING and self.inputs_ready:
            return [self._request_reset(now_s)]
        if self.state is State.RESETTING and now_s - self._reset_sent_s > self.cfg.reset_timeout_s:
            self.counters.reset_timeouts += 1
            assert self.batch is not None
            self.batch.attempts -= 1  # the same seed again
            return [self._request_reset(now_s)]
        return []

    # ------------------------------------------------------------------ ends

    def _finish(
        self, end_reason: int, success: bool, stamp_ns: int, now_s: float, last: bool = False
    ) -> list[Effect]:
        episode, batch = self.episode, self.batch
        assert episode is not None and batch is not None
        episode.phase = PHASE_DONE
        effects: list[Effect] = [self._event(PHASE_DONE, stamp_ns, success=success, end_reason=end_reason)]
        self.episode = None
        self.state = State.IDLE
        c = self.counters
        c.episodes += 1
        c.by_mode[batch.mode] = c.by_mode.get(batch.mode, 0) + 1
        if end_reason == END_ABORT:
            c.aborts += 1
            batch.aborted += 1
        else:
            batch.done += 1
            c.successes += success
            c.time_limits += end_reason == END_TIME_LIMIT
            batch.successes += success
        if last:
            return effects
        if batch.done >= batch.num_episodes:
            effects.append(self._batch_result("done"))
        else:
            effects += self._next_reset(now_s)
        return effects

    def _batch_result(self, message: str) -> BatchResult:
        batch = self.batch
        assert batch is not None
        self.batch, self.state = None, State.IDLE
        text = f"{message}: {batch.done} episodes, {batch.successes} successes, {batch.aborted} aborted"
        return BatchResult(batch.done, batch.successes, batch.aborted, text)

    def _event(self, phase: int, stamp_ns: int, success: bool = False, end_reason: int = END_NONE) -> Event:
        episode, batch = self.episode, self.batch
        assert episode is not None and batch is not None
        return Event(
            episode_id=episode.episode_id,
            phase=phase,
            t_base=episode.plan.base_steps,
            step=episode.step,
            seed=episode.seed,
            stamp_ns=int(stamp_ns),
            task=batch.task,
            instruction=episode.instruction,
            success=success,
            end_reason=end_reason,
        )

    # ------------------------------------------------------------------ status

    def status(self) -> dict:
        episode, batch = self.episode, self.batch
        return {
            "state": self.state.value,
            "episode": None
            if episode is None
            else {"episode_id": episode.episode_id, "phase": episode.phase, "step": episode.step,
                  "t_base": episode.plan.base_steps, "seed": episode.seed, "warmup": episode.plan.warmup},
            "batch": None
            if batch is None
            else {"mode": batch.mode, "num_episodes": batch.num_episodes, "done": batch.done,
                  "successes": batch.successes, "aborted": batch.aborted},
            "train_episodes": self.train_episodes,
            "counters": {**self.counters.__dict__},
        }  # fmt: skip
