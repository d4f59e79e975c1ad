"""The one mapping between the agent's normalised action space and the robot's physical actions.

The agent, the replay buffers and the learner live in [-1, 1]^A; the env takes physical units (m and rad
per step, gripper in [-1, 1]; `pld_sim.control.ActionLimits`). The base action is divided by the limits
on the way in; the executed action is `limits * combine(base_norm, delta, xi)` on the way out. Methods
without base guidance (RLPD, WSRL, JSRL after the roll-in, SAC) see a zero base and act with xi = 1, so
the agent's output is the whole action; that switch lives here and nowhere else. The learner gets the
same xi through the batch (`update_xis`), so every method runs the same agent config and therefore the
same compiled `update` (a compile costs 15-20 s on this CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pld_residual.agent.combine import combine, xi_schedule
from pld_residual.agent.config import ResidualSACConfig


@dataclass(frozen=True)
class ActionScale:
    """Per-dimension physical limit `high` [A] (symmetric box): physical = high * normalised."""

    high: np.ndarray

    def __post_init__(self) -> None:
        high = np.asarray(self.high, dtype=np.float32).reshape(-1)
        if high.size == 0 or not np.all(np.isfinite(high)) or np.any(high <= 0):
            raise ValueError(f"action limits must be positive and finite, got {self.high!r}")
        object.__setattr__(self, "high", high)

    @classmethod
    def from_space(cls, space: object) -> ActionScale:
        """From a gymnasium Box action space; it must be symmetric (low = -high), as pld_sim's is."""
        low = np.asarray(space.low, dtype=np.float32)  # type: ignore[attr-defined]
        high = np.asarray(space.high, dtype=np.float32)  # type: ignore[attr-defined]
        if not np.allclose(low, -high):
            raise ValueError(f"action space must be symmetric, got low {low} and high {high}")
        return cls(high)

    @property
    def dim(self) -> int:
        return int(self.high.size)

    def normalise(self, physical: np.ndarray) -> np.ndarray:
        """Physical action -> [-1, 1] (clipped: the env clips to the same box anyway)."""
        return np.clip(np.asarray(physical, np.float32) / self.high, -1.0, 1.0).astype(np.float32)

    def to_env(self, normalised: np.ndarray) -> np.ndarray:
        """[-1, 1] -> physical action for `env.step`."""
        return (np.asarray(normalised, np.float32) * self.high).astype(np.float32)


def agent_base(base_norm: np.ndarray, guided: bool) -> np.ndarray:
    """The base action the agent sees (and replay stores): the real one when guided, else zeros."""
    base = np.asarray(base_norm, dtype=np.float32)
    return base if guided else np.zeros_like(base)


def agent_xi(xi: float, guided: bool) -> float:
    """Residual scale used to execute the agent's output: the schedule's xi when guided, else 1."""
    return float(xi) if guided else 1.0


def executed_action(
    base_norm: np.ndarray, delta: np.ndarray, xi: float, scale: ActionScale, guided: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(normalised executed action, physical env action) for one agent step.

    normalised = clip(agent_base + agent_xi * delta, -1, 1); physical = limits * normalised. The
    normalised one is what replay stores as `action` (the learner's critic takes the combined action).
    """
    norm = combine(agent_base(base_norm, guided), np.asarray(delta, np.float32), agent_xi(xi, guided))
    norm = np.asarray(norm, dtype=np.float32)
    return norm, scale.to_env(norm)


def update_xis(first_step: int, count: int, config: ResidualSACConfig, guided: bool) -> np.ndarray:
    """xi [count] for gradient steps `first_step ..`: the learner's own schedule when guided, else 1."""
    if not guided:
        return np.ones(count, np.float32)
    return np.array([xi_schedule(first_step + k, config) for k in range(count)], np.float32)


def acting_xi(gradient_steps: int, config: ResidualSACConfig, guided: bool) -> float:
    """xi to act with after `gradient_steps` online gradient steps (`learner.current_xi` without a sync)."""
    return agent_xi(xi_schedule(int(gradient_steps), config), guided)
