"""Route one episode's step stream: every step into the trajectory, only non-probing steps into replay.

The trajectory (with "base"/"residual" provenance per step) is what collection keeps for SFT; the replay
buffer gets the agent's own transitions. Putting both behind one `step` call keeps the bookkeeping (which
observation opens the replay episode, when it ends) in a single tested place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pld_residual.replay.buffer import ReplayBuffer
from pld_residual.replay.probing import Controller, EpisodePlan

Observation = Mapping[str, Any]


def _copy_obs(obs: Observation) -> dict[str, Any]:
    return {
        key: np.array(value, copy=True) if isinstance(value, np.ndarray) else value
        for key, value in obs.items()
    }


def _same_obs(a: Observation, b: Observation) -> bool:
    if set(a) != set(b):
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
            if not np.array_equal(value, other):
                return False
        elif value != other:
            return False
    return True


@dataclass(frozen=True)
class TrajectoryStep:
    """One step as executed: the observation, the action sent to the robot, its reward and who chose it."""

    obs: dict[str, Any]
    action: np.ndarray
    reward: float
    provenance: Controller


@dataclass
class Trajectory:
    """A whole episode, probing prefix included, for SFT datasets."""

    plan: EpisodePlan
    steps: list[TrajectoryStep] = field(default_factory=list)
    final_obs: dict[str, Any] | None = None
    terminated: bool = False
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def provenance(self) -> list[Controller]:
        return [s.provenance for s in self.steps]

    @property
    def actions(self) -> np.ndarray:
        return np.stack([s.action for s in self.steps])

    @property
    def rewards(self) -> np.ndarray:
        return np.array([s.reward for s in self.steps], dtype=np.float32)


class EpisodeRecorder:
    """Consumes one episode's `(obs, action, reward, next_obs, terminated, truncated, provenance)` stream.

    `replay` may be None (collection without learning). `to_replay_obs` maps a stream observation (which
    may carry raw images, the instruction, ...) to the replay buffer's fields; default: unchanged.
    Consecutive steps must chain (`obs` equals the previous `next_obs`), because the buffer finds next
    observations by position. If a step raises, fix the input and repeat it, or call `abort`.
    """

    def __init__(
        self,
        plan: EpisodePlan,
        replay: ReplayBuffer | None = None,
        to_replay_obs: Callable[[Observation], Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        self.plan = plan
        self.replay = replay
        self.to_replay_obs = to_replay_obs if to_replay_obs is not None else (lambda obs: obs)
        self.trajectory = Trajectory(plan=plan)
        self._previous_next_obs: Observation | None = None
        self._replay_open = False
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def num_steps(self) -> int:
        return len(self.trajectory.steps)

    def step(
        self,
        obs: Observation,
        action: np.ndarray,
        reward: float,
        next_obs: Observation,
        terminated: bool,
        truncated: bool,
        provenance: Controller,
        replay_action: np.ndarray | None = None,
        **extras: np.ndarray,
    ) -> None:
        """Record step `num_steps`.

        `action` is what the robot executed (kept for SFT). Replay stores `replay_action` if given, else
        `action`: the executed, combined action is what `agent.learner` takes, so pass `replay_action`
        only for a learner that stores something else (e.g. the residual `a_delta`).
        """
        if self._done:
            raise RuntimeError("EpisodeRecorder.step: the episode has already ended")
        t = self.num_steps
        if t >= self.plan.time_limit_steps:
            raise ValueError(
                f"step {t} is past the time limit ({self.plan.time_limit_steps} steps) without truncation"
            )
        expected = self.plan.controller(t)
        if provenance != expected:
            raise ValueError(f"step {t}: provenance {provenance!r}, but the plan says {expected!r} drives it")
        if self._previous_next_obs is not None and not _same_obs(obs, self._previous_next_obs):
            raise ValueError(
                f"step {t}: obs differs from the previous step's next_obs (the stream does not chain)"
            )
        if self.replay is not None and self.plan.goes_to_replay(t):
            if not self._replay_open:
                # probing just ended (or warm-up began): the replay episode opens at this step's observation
                self.replay.start_episode(self.to_replay_obs(obs))
                self._replay_open = True
            self.replay.add(
                action if replay_action is None else replay_action,
                reward,
                self.to_replay_obs(next_obs),
                terminated,
                truncated,
                **extras,
            )
        self.trajectory.steps.append(
            TrajectoryStep(_copy_obs(obs), np.array(action, dtype=np.float32), float(reward), provenance)
        )
        self._previous_next_obs = _copy_obs(next_obs)
        if terminated or truncated:
            self._done = True
            self._replay_open = False
            self.trajectory.final_obs = _copy_obs(next_obs)
            self.trajectory.terminated = bool(terminated)
            self.trajectory.truncated = bool(truncated)

    def abort(self) -> None:
        """Stop early (robot stopped, error): drop the open replay episode; the partial trajectory stays."""
        if self.replay is not None and self._replay_open:
            self.replay.abort_episode()
        self._replay_open = False
        self._done = True
