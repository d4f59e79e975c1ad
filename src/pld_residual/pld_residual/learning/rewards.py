"""Where the RL reward comes from: a pluggable `RewardSource` (the task predicate now, a classifier later).

On a robot there is no success predicate, so PLD learns a success classifier; in simulation the task's
own predicate stands in for it. Both answer the same question after every step, "did this step reach
success?", and the reward is 1.0 exactly then (the episode also ends there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from pld_sim.registry import Registry


class RewardOutcome(NamedTuple):
    reward: float
    success: bool


@runtime_checkable
class RewardSource(Protocol):
    """Judges one step from the observation it reached and the env's info dict."""

    def __call__(self, next_obs: Mapping[str, Any], info: Mapping[str, Any]) -> RewardOutcome: ...


class PredicateReward:
    """Sparse binary reward from the simulator's success predicate (`info["success"]`)."""

    def __call__(self, next_obs: Mapping[str, Any], info: Mapping[str, Any]) -> RewardOutcome:
        success = bool(info.get("success", False))
        return RewardOutcome(1.0 if success else 0.0, success)


# name -> factory taking the LearnConfig dict (so a classifier source can read its checkpoint path)
REWARD_SOURCES: Registry[Callable[..., RewardSource]] = Registry("reward source")
REWARD_SOURCES.add("predicate", lambda **_: PredicateReward())


def make_reward_source(name: str, **options: Any) -> RewardSource:
    """The registered reward source `name`."""
    return REWARD_SOURCES.lookup(name)(**options)
