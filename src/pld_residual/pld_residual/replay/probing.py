"""PLD's probing schedule: who drives each step of an episode, and which steps the RL replay buffer sees.

Probing: the frozen base policy drives the first `T_base ~ U{0, ..., floor(alpha * T)}` steps, then the
residual agent takes over (`a = a_base + xi * a_delta`). The residual thus starts from states the base
policy itself visits, and collected trajectories (base prefix + residual suffix) stay close to the base's
deployment distribution while containing its recoveries.

Replay: probing steps (`step < base_steps`) are NOT added to the RL replay buffer (the agent did not act
there, and the prefix is not its data), but they ARE part of the collected trajectory (SFT needs the
whole episode). The first replay transition therefore starts from the observation at step `base_steps`.

Warm-up: the first `warmup_episodes` episodes are driven by the base only (the residual outputs 0), and
all of their steps DO go to the online buffer: as in PLD, they are base-driven exploration data the critic
learns from before the actor acts. Warm-up episodes draw nothing from the rng.

Step `t` is the transition from the observation at `t` with action `a_t` to the observation at `t + 1`;
steps run from 0 to `time_limit_steps - 1`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Controller = Literal["base", "residual"]
BASE: Controller = "base"
RESIDUAL: Controller = "residual"

_FLOOR_TOLERANCE = 1e-9  # so that e.g. 0.29 * 100 = 28.999999999999996 counts as 29


def max_base_steps(alpha: float, time_limit_steps: int) -> int:
    """The largest `T_base`: `floor(alpha * T)` (tolerant of float round-off)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if int(time_limit_steps) != time_limit_steps or time_limit_steps < 1:
        raise ValueError(f"time_limit_steps must be a positive integer, got {time_limit_steps}")
    return math.floor(alpha * time_limit_steps + _FLOOR_TOLERANCE)


def sample_base_steps(rng: np.random.Generator, alpha: float, time_limit_steps: int) -> int:
    """Draw `T_base` uniformly from the integers `0, 1, ..., floor(alpha * T)`, both ends included.

    0 means the residual drives from the first step; `floor(alpha * T)` with alpha = 1 means the base
    drives the whole episode (nothing goes to replay).
    """
    return int(rng.integers(0, max_base_steps(alpha, time_limit_steps) + 1))


@dataclass(frozen=True)
class EpisodePlan:
    """Who drives each step of one episode and which steps go to the replay buffer."""

    base_steps: int
    time_limit_steps: int
    warmup: bool = False

    def __post_init__(self) -> None:
        if int(self.time_limit_steps) != self.time_limit_steps or self.time_limit_steps < 1:
            raise ValueError(f"time_limit_steps must be a positive integer, got {self.time_limit_steps}")
        if not 0 <= self.base_steps <= self.time_limit_steps:
            raise ValueError(f"base_steps must be in [0, {self.time_limit_steps}], got {self.base_steps}")
        if self.warmup and self.base_steps != self.time_limit_steps:
            raise ValueError("a warm-up episode is driven by the base for all its steps")

    @classmethod
    def warmup_episode(cls, time_limit_steps: int) -> EpisodePlan:
        """All steps driven by the base, all steps into the online buffer."""
        return cls(base_steps=time_limit_steps, time_limit_steps=time_limit_steps, warmup=True)

    @property
    def replay_start_step(self) -> int:
        """The step whose observation opens the replay episode: 0 in warm-up, else T_base."""
        return 0 if self.warmup else self.base_steps

    def _check(self, step: int) -> None:
        if not 0 <= step < self.time_limit_steps:
            raise ValueError(f"step {step} is outside the episode [0, {self.time_limit_steps})")

    def controller(self, step: int) -> Controller:
        """Who picks step `step`'s action: the base for probing and warm-up steps, then the residual."""
        self._check(step)
        return BASE if step < self.base_steps else RESIDUAL

    def goes_to_replay(self, step: int) -> bool:
        """Whether step `step`'s transition is added to the RL replay buffer (not for probing steps)."""
        self._check(step)
        return self.warmup or step >= self.base_steps


@dataclass(frozen=True)
class ProbingConfig:
    """Probing settings for RL training and collection: `alpha`, the time limit, and the warm-up length."""

    alpha: float
    time_limit_steps: int
    warmup_episodes: int = 100

    def __post_init__(self) -> None:
        max_base_steps(self.alpha, self.time_limit_steps)  # validates both
        if int(self.warmup_episodes) != self.warmup_episodes or self.warmup_episodes < 0:
            raise ValueError(f"warmup_episodes must be a non-negative integer, got {self.warmup_episodes}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ProbingConfig:
        unknown = sorted(set(values) - {"alpha", "time_limit_steps", "warmup_episodes"})
        if unknown:
            raise ValueError(f"ProbingConfig: unknown key(s) {unknown}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def plan(self, rng: np.random.Generator, episode_index: int) -> EpisodePlan:
        """The plan of episode `episode_index` (0-based, counted over the whole run, warm-up included)."""
        if episode_index < 0:
            raise ValueError(f"episode_index must be non-negative, got {episode_index}")
        if episode_index < self.warmup_episodes:
            return EpisodePlan.warmup_episode(self.time_limit_steps)
        base_steps = sample_base_steps(rng, self.alpha, self.time_limit_steps)
        return EpisodePlan(base_steps=base_steps, time_limit_steps=self.time_limit_steps)
