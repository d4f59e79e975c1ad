"""One episode of the ROS graph as the residual learner's transitions, without ROS.

The learner node collects what the graph published during an episode (observations, action chunks,
commands, rewards; all stamped with the graph clock) and, once the episode manager says DONE, rebuilds the
steps exactly as `pld learn` sees them in-process (`base_env.BaseGuidedEnv`): for observation k the chunk
is the newest one stamped at or before it within the episode, the base action its row
`round((stamp_k - chunk stamp) / period)`, the residual input `features` of that chunk + `proprio`; the
action of step k is the executed command, normalised by the action limits; the reward of step k is the
success of the `reward` for observation k + 1. Assembling after DONE keeps it independent of the order in
which topics deliver.

An episode that cannot be rebuilt (a missing observation, command or chunk) gives no transitions;
`EpisodeSteps.problem` says why. A hold (the actor waited too long for a chunk) is what the robot did, so
it is a transition like any other.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ChunkRecord:
    stamp_ns: int
    actions: np.ndarray  # [H, 7] physical
    features: np.ndarray  # [F]


@dataclass(frozen=True)
class CommandRecord:
    stamp_ns: int
    step: int
    command: np.ndarray  # [7] physical, as executed
    provenance: int


@dataclass
class EpisodeSteps:
    """The rebuilt episode: observation fields 0..N, actions and rewards 0..N-1, how it ended."""

    fields: list[dict[str, np.ndarray]] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminated: bool = False
    problem: str = ""

    @property
    def length(self) -> int:
        return len(self.actions)


class EpisodeBuffer:
    """What one episode published, kept until DONE (`rebuild`)."""

    def __init__(self, start_stamp_ns: int, period_ns: int, action_high: np.ndarray) -> None:
        self.start_stamp_ns = int(start_stamp_ns)
        self.period_ns = int(period_ns)
        self.action_high = np.asarray(action_high, np.float32)
        self.observations: dict[int, tuple[int, np.ndarray]] = {}  # step -> (stamp, proprio)
        self._chunk_stamps: list[int] = []
        self._chunks: list[ChunkRecord] = []
        self.commands: dict[int, CommandRecord] = {}
        self.rewards: dict[int, bool] = {}  # observation stamp -> success
        self.end_stamp_ns: int | None = None  # the DONE stamp, once known: later messages are not ours
        self.newest: dict[str, int] = {}  # topic -> newest stamp seen (each topic arrives in order)

    def _ours(self, kind: str, stamp_ns: int) -> bool:
        self.newest[kind] = max(self.newest.get(kind, stamp_ns), stamp_ns)
        end = self.end_stamp_ns
        return stamp_ns >= self.start_stamp_ns and (end is None or stamp_ns <= end)

    def complete(self) -> bool:
        """Every topic has moved past the DONE stamp: nothing of this episode can still arrive."""
        end = self.end_stamp_ns
        return end is not None and all(
            self.newest.get(k, -1) > end for k in ("observation", "command", "reward")
        )

    def add_observation(self, stamp_ns: int, step: int, proprio: np.ndarray) -> None:
        if self._ours("observation", stamp_ns):
            self.observations.setdefault(int(step), (int(stamp_ns), np.asarray(proprio, np.float32)))

    def add_chunk(self, chunk: ChunkRecord) -> None:
        if not self._ours("chunk", chunk.stamp_ns):
            return  # answers an observation of another episode (the actor does not use it either)
        index = bisect.bisect(self._chunk_stamps, chunk.stamp_ns)
        self._chunk_stamps.insert(index, chunk.stamp_ns)
        self._chunks.insert(index, chunk)

    def add_command(self, command: CommandRecord) -> None:
        if not self._ours("command", command.stamp_ns):
            return  # answers an observation of another episode
        self.commands.setdefault(int(command.step), command)  # the first answer to a step is the executed one

    def add_reward(self, stamp_ns: int, success: bool) -> None:
        if not self._ours("reward", stamp_ns):
            return
        self.rewards[int(stamp_ns)] = bool(success) or self.rewards.get(int(stamp_ns), False)

    def _normalise(self, action: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(action, np.float32) / self.action_high, -1.0, 1.0).astype(np.float32)

    def _fields(self, stamp_ns: int, proprio: np.ndarray) -> dict[str, np.ndarray] | None:
        index = bisect.bisect_right(self._chunk_stamps, stamp_ns) - 1
        if index < 0:
            return None
        chunk = self._chunks[index]
        row = (stamp_ns - chunk.stamp_ns + self.period_ns // 2) // self.period_ns
        if row >= len(chunk.actions):
            return None
        return {
            "features": np.asarray(chunk.features, np.float32),
            "proprio": proprio,
            "base_action": self._normalise(chunk.actions[row]),
        }

    def rebuild(self, last_step: int, success: bool) -> EpisodeSteps:
        """The episode's steps up to observation `last_step` (the DONE event's step)."""
        out = EpisodeSteps()
        for k in range(last_step + 1):
            if k not in self.observations:
                out.problem = f"observation {k} missing"
                return out
            stamp, proprio = self.observations[k]
            fields = self._fields(stamp, proprio)
            if fields is None:
                out.problem = f"no action chunk covers observation {k}"
                return out
            out.fields.append(fields)
        for k in range(last_step):
            command = self.commands.get(k)
            if command is None:
                out.problem = f"command {k} missing"
                return out
            out.actions.append(self._normalise(command.command))
            out.rewards.append(1.0 if self.rewards.get(self.observations[k + 1][0], False) else 0.0)
        out.terminated = bool(success) and last_step > 0 and out.rewards[-1] == 1.0
        return out


@dataclass(frozen=True)
class FinishedEpisode:
    """An episode whose messages are all in: rebuilt steps and what the learner needs of its events."""

    episode_id: int
    steps: EpisodeSteps
    t_base: int
    success: bool


class EpisodeCollector:
    """Routes the graph's messages to every open episode (each keeps what is stamped inside it: a backlog
    may deliver topics out of step with each other, never out of order within one) and hands out an
    episode once every topic has moved past its DONE stamp, or `timeout_s` of wall time after DONE.
    An episode's first observation comes before its RESET event, so recent messages are replayed into a
    new episode. Aborted episodes are counted, not handed out."""

    def __init__(self, period_ns: int, action_high: np.ndarray, timeout_s: float = 10.0, recent: int = 2000):
        self.period_ns, self.action_high, self.timeout_s = int(period_ns), action_high, float(timeout_s)
        self._recent: deque[tuple[str, tuple]] = deque(maxlen=recent)
        self._open: dict[int, tuple[int, EpisodeBuffer]] = {}  # episode id -> (t_base, buffer)
        self._done: dict[int, tuple[int, bool, bool, float]] = {}  # id -> (last step, success, aborted, at)
        self.aborted = 0

    def reset(self, episode_id: int, stamp_ns: int, t_base: int) -> None:
        if episode_id in self._open:
            return
        buffer = EpisodeBuffer(stamp_ns, self.period_ns, self.action_high)
        for kind, record in self._recent:
            getattr(buffer, f"add_{kind}")(*record)
        self._open[episode_id] = (int(t_base), buffer)

    def done(
        self, episode_id: int, stamp_ns: int, step: int, success: bool, aborted: bool, now_s: float
    ) -> None:
        if episode_id in self._open:
            self._open[episode_id][1].end_stamp_ns = int(stamp_ns)
            self._done[episode_id] = (int(step), bool(success), bool(aborted), now_s)

    def add(self, kind: str, *record) -> None:
        """kind: observation (stamp, step, proprio) | chunk (ChunkRecord) | command (CommandRecord) |
        reward (stamp, success)."""
        self._recent.append((kind, record))
        for _, buffer in self._open.values():
            getattr(buffer, f"add_{kind}")(*record)

    def finished(self, now_s: float) -> list[FinishedEpisode]:
        out = []
        for episode_id in sorted(self._done):
            step, success, aborted, at = self._done[episode_id]
            t_base, buffer = self._open[episode_id]
            if not (buffer.complete() or now_s - at > self.timeout_s):
                continue
            del self._open[episode_id], self._done[episode_id]
            if aborted:
                self.aborted += 1
                continue
            out.append(FinishedEpisode(episode_id, buffer.rebuild(step, success), t_base, success))
        return out
