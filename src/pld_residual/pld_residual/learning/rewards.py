"""Where the RL reward comes from: a pluggable `RewardSource`, the task predicate or a success classifier.

On a robot there is no success predicate, so PLD learns a success classifier (`pld_reward`); in
simulation the task's own predicate can stand in for it. Both answer the same question after every step,
"did this step reach success?", and the reward is 1.0 exactly then (the episode also ends there).
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


class ClassifierReward:
    """Sparse binary reward from a trained `pld_reward` classifier looking at the cameras (as on a robot).

    The stage is the task's stage id in the classifier (0 for a single-task classifier). A frame it cannot
    judge raises `pld_reward.preprocess.FrameError`: in simulation that is a set-up error, not a failure.
    """

    def __init__(self, checkpoint: str, task: str, threshold: float | None = None) -> None:
        from pld_reward.classifier import SuccessClassifier

        self.classifier = SuccessClassifier.load(checkpoint)
        self.stage = self.classifier.cfg.stage_of_task(task)
        self.threshold = threshold

    def __call__(self, next_obs: Mapping[str, Any], info: Mapping[str, Any]) -> RewardOutcome:
        judgement = self.classifier.judge(
            next_obs["images"], next_obs.get("proprio"), self.stage, self.threshold
        )
        return RewardOutcome(1.0 if judgement.success else 0.0, judgement.success)


def _classifier_source(checkpoint: str | None = None, task: str = "", **_: Any) -> ClassifierReward:
    if not checkpoint:
        raise ValueError("reward 'classifier' needs reward_checkpoint: a `pld reward train` output directory")
    return ClassifierReward(checkpoint, task)


# name -> factory taking keyword options (`checkpoint`: a classifier directory, `task`: the task name)
REWARD_SOURCES: Registry[Callable[..., RewardSource]] = Registry("reward source")
REWARD_SOURCES.add("predicate", lambda **_: PredicateReward())
REWARD_SOURCES.add("classifier", _classifier_source)


def make_reward_source(name: str, **options: Any) -> RewardSource:
    """The registered reward source `name`."""
    return REWARD_SOURCES.lookup(name)(**options)
