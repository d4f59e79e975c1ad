"""`LearnConfig`: every setting of one PLD stage-1 run (`pld learn`), validated in one place.

Defaults follow design.md §1 (PLD paper): 100 base-driven warm-up episodes, ~50 successful base rollouts
for the offline buffer and the Cal-QL critic warm start, the agent's own defaults in `ResidualSACConfig`.

Probing alpha. The paper draws `T_base ~ U[0, alpha * T]` and leaves alpha per task; our default is 0.5:
the residual then always has at least half of the time limit to act and recover, while the base prefix
still covers the approach phase of our 10-15 s tasks (where the base is usually right), so the residual's
starts spread over the states the base itself visits. Larger alphas spend more of the budget on steps that
never reach replay; 0 turns probing off.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from pld_residual.agent.config import ResidualSACConfig

OBSERVATIONS = ("vla", "privileged", "proprio")
DEFAULT_EXECUTE_STEPS = 4  # = pld_vla_server.evaluation.DEFAULT_EXECUTE_STEPS (checked in the tests)


@dataclass(frozen=True)
class LearnConfig:
    """One `pld learn` run: task, method, budgets, evaluation, checkpointing and the agent's config."""

    task: str = "pick_cube"
    method: str = "pld"  # a name of `learning.methods.METHODS`
    total_env_steps: int = 50_000  # online env steps (offline collection and evaluation not counted)
    warmup_episodes: int = 100  # base-only episodes into the online buffer (methods that warm up)
    probing_alpha: float = 0.5  # T_base ~ U{0..floor(alpha*T)}; see the module docstring
    # training rollouts draw the residual's Gaussian noise once per this many residual steps and hold it
    # in between (1 = fresh noise every step, plain SAC): held noise moves the hand by k x the per-step
    # offset instead of a sqrt(k) random walk, so it explores positions, not jitter
    exploration_hold_steps: int = 1
    offline_episodes: int = 50  # successful base rollouts kept for the offline buffer / warm start
    offline_max_attempts: int = 200  # base rollouts tried at most while collecting them
    critic_pretrain_steps: int = 2_000  # critic warm-start gradient steps (methods with a warm start)
    eval_every_steps: int = 5_000
    eval_episodes: int = 20
    eval_at_start: bool = True  # a first point at 0 steps (for residual methods: the base alone)
    execute_steps: int = DEFAULT_EXECUTE_STEPS  # base chunk rows executed before re-planning
    seed: int = 0
    checkpoint_every: int = 5_000  # env steps between checkpoints (taken at episode ends)
    buffer_capacity: int = 250_000
    observation: str = "vla"  # residual input: VLA features + proprio | privileged state + proprio | proprio
    reward: str = "predicate"  # a name of `learning.rewards.REWARD_SOURCES`
    # reward "classifier": the `pld reward train` output directory. Training episodes then end when the
    # classifier says success (the simulator's predicate no longer ends them); evaluation still measures
    # success with the predicate
    reward_checkpoint: str | None = None
    image_size: int | None = None  # camera size; None = the base backend's input size
    time_limit_s: float | None = None  # None = the task's own limit
    base_checkpoint: str | None = None  # None = <workspace>/runs/base_vla/flow
    # JSRL roll-in curriculum: the guide drives the first h = T * (1 - stage / stages) steps; a stage is
    # passed when the last `jsrl_window` episodes succeed at least (1 - tolerance) x the best rate so far
    jsrl_stages: int = 10
    jsrl_window: int = 10
    jsrl_tolerance: float = 0.05
    agent: dict[str, Any] = field(default_factory=dict)  # ResidualSACConfig overrides

    def __post_init__(self) -> None:
        positive = ("total_env_steps", "eval_every_steps", "eval_episodes", "execute_steps")
        positive += (
            "checkpoint_every",
            "buffer_capacity",
            "jsrl_stages",
            "jsrl_window",
            "exploration_hold_steps",
        )
        for name in positive:
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_episodes", "offline_episodes", "offline_max_attempts", "critic_pretrain_steps"):
            _check_int(name, getattr(self, name), minimum=0)
        _check_int("seed", self.seed, minimum=0)
        if self.image_size is not None:
            _check_int("image_size", self.image_size, minimum=16)
        if not _is_real(self.probing_alpha) or not 0.0 <= self.probing_alpha <= 1.0:
            raise ValueError(f"probing_alpha must be in [0, 1], got {self.probing_alpha!r}")
        if not _is_real(self.jsrl_tolerance) or not 0.0 <= self.jsrl_tolerance < 1.0:
            raise ValueError(f"jsrl_tolerance must be in [0, 1), got {self.jsrl_tolerance!r}")
        if self.time_limit_s is not None and (not _is_real(self.time_limit_s) or self.time_limit_s <= 0):
            raise ValueError(f"time_limit_s must be positive or None, got {self.time_limit_s!r}")
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {list(OBSERVATIONS)}, got {self.observation!r}")
        if not isinstance(self.eval_at_start, bool):
            raise ValueError(f"eval_at_start must be a bool, got {self.eval_at_start!r}")
        if not isinstance(self.agent, dict):
            raise ValueError(f"agent must be a dict of ResidualSACConfig fields, got {self.agent!r}")
        from pld_residual.learning.methods import METHODS
        from pld_residual.learning.rewards import REWARD_SOURCES

        METHODS.lookup(self.method)  # unknown names list the known ones
        REWARD_SOURCES.lookup(self.reward)
        if self.reward == "classifier" and not self.reward_checkpoint:
            raise ValueError(
                "reward 'classifier' needs reward_checkpoint (a `pld reward train` output directory)"
            )
        self.agent_config()  # validates the overrides now, not after minutes of data collection

    def agent_config(self) -> ResidualSACConfig:
        """The agent's config as given (the method may still override some fields, see `methods`)."""
        return ResidualSACConfig.from_dict(self.agent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearnConfig:
        """Build from a plain dict (JSON, YAML, CLI overrides); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown LearnConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; `from_dict(to_dict())` gives an equal config."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> LearnConfig:
        return dataclasses.replace(self, **changes)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
