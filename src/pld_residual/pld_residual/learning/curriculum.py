"""Who drives each episode: PLD probing / warm-up plans, and JSRL's roll-in curriculum.

`episode_plan` is the one place that turns a method's switches into the episode's `EpisodePlan`. JSRL
differs from PLD probing in one rule: its guide (roll-in) steps DO go to replay, because in JSRL the
exploration agent learns from every transition; `RollInPlan` says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pld_residual.learning.methods import MethodSpec
from pld_residual.replay.probing import EpisodePlan, ProbingConfig


@dataclass(frozen=True)
class RollInPlan(EpisodePlan):
    """The guide drives steps `t < base_steps`; every step goes to replay (JSRL)."""

    @property
    def replay_start_step(self) -> int:
        return 0

    def goes_to_replay(self, step: int) -> bool:
        self._check(step)
        return True


@dataclass
class RollInCurriculum:
    """JSRL-Curriculum: guide horizon h = round(T * (1 - stage / stages)), stage 0..stages.

    A stage ends after `window` episodes whose success rate is at least (1 - tolerance) times the best
    window rate of the earlier stages (stage 0, where the guide drives everything, sets the reference).
    State is plain data, so it goes into the loop checkpoint.
    """

    time_limit_steps: int
    stages: int = 10
    window: int = 10
    tolerance: float = 0.05
    stage: int = 0
    best_rate: float | None = None
    recent: list[bool] = field(default_factory=list)

    @property
    def horizon(self) -> int:
        return round(self.time_limit_steps * (1 - self.stage / self.stages))

    def record(self, success: bool) -> None:
        """Account one training episode at the current stage; advance when the window holds up."""
        if self.stage >= self.stages:
            return
        self.recent.append(bool(success))
        if len(self.recent) < self.window:
            return
        rate = float(np.mean(self.recent[-self.window :]))
        if self.best_rate is None or rate >= (1 - self.tolerance) * self.best_rate:
            self.best_rate = rate if self.best_rate is None else max(self.best_rate, rate)
            self.stage += 1
            self.recent = []
        else:
            self.recent = self.recent[-self.window + 1 :]  # slide the window

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RollInCurriculum:
        return cls(**data)


def episode_plan(
    method: MethodSpec,
    rng: np.random.Generator,
    episode_index: int,
    time_limit_steps: int,
    probing_alpha: float,
    warmup_episodes: int,
    curriculum: RollInCurriculum | None = None,
) -> EpisodePlan:
    """The plan of online episode `episode_index` (0-based) for `method`."""
    warmup = warmup_episodes if method.warmup_by_base else 0
    if episode_index < warmup:
        return EpisodePlan.warmup_episode(time_limit_steps)
    if method.rollin:
        if curriculum is None:
            raise ValueError("a roll-in method needs its RollInCurriculum")
        return RollInPlan(base_steps=curriculum.horizon, time_limit_steps=time_limit_steps)
    if method.probing:
        return ProbingConfig(probing_alpha, time_limit_steps, warmup).plan(rng, episode_index)
    return EpisodePlan(base_steps=0, time_limit_steps=time_limit_steps)
