"""`BaseGuidedEnv`: a task env with the frozen base VLA running inside it, as the residual agent sees it.

Every step it knows the base policy's action for this step (a row of the current chunk, re-predicted every
`execute_steps` steps or when the chunk runs out, like the ROS actor node indexes chunks) and the residual's
observation: `concat(VLA features, proprio)` (features of the latest chunk, as the node sees them), the
privileged simulator state instead of the features (sim ablation), or proprio alone. Rewards come from a
`RewardSource`; an episode terminates on success.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pld_residual.learning.action_space import ActionScale
from pld_residual.learning.config import OBSERVATIONS
from pld_residual.learning.rewards import PredicateReward, RewardSource


@dataclass
class GuidedObs:
    """One step's view: the env observation, the residual's input fields and the base action."""

    raw: Mapping[str, Any]  # the env observation (images, proprio, instruction, ...)
    fields: dict[str, np.ndarray]  # residual input fields in order (float32), e.g. features, proprio
    base_action: np.ndarray  # normalised base action for this step [A] in [-1, 1]

    @property
    def vector(self) -> np.ndarray:
        """The residual's observation vector (the learner's `obs`)."""
        return np.concatenate(list(self.fields.values())).astype(np.float32, copy=False)


def default_backend_input(backend: Any) -> Callable[[Mapping[str, Any]], Any]:
    """pld_sim observation -> `VLAObservation` for this backend's cameras."""
    from pld_vla_server.evaluation import to_vla_observation

    spec = getattr(backend, "input_spec", None)
    cameras = tuple(spec.cameras) if spec is not None else None
    return lambda obs: to_vla_observation(dict(obs), cameras)


class BaseGuidedEnv:
    """gymnasium-style: `reset(seed) -> (GuidedObs, info)`, `step(env_action) -> (GuidedObs, r, term, trunc,
    info)`; `env_action` is physical (see `action_space.executed_action`)."""

    def __init__(
        self,
        env: Any,
        backend: Any,
        execute_steps: int = 4,
        observation: str = "vla",
        reward_source: RewardSource | None = None,
        backend_input: Callable[[Mapping[str, Any]], Any] | None = None,
    ) -> None:
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {list(OBSERVATIONS)}, got {observation!r}")
        if execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1, got {execute_steps}")
        self.env = env
        self.backend = backend
        self.execute_steps = int(execute_steps)
        self.observation = observation
        self.reward_source = reward_source if reward_source is not None else PredicateReward()
        self.backend_input = backend_input or default_backend_input(backend)
        self.scale = ActionScale.from_space(env.action_space)
        self._chunk: Any = None
        self._row = 0
        self.predictions = 0
        self.step_count = 0

    @property
    def time_limit_steps(self) -> int:
        """Steps per episode at most (the env truncates there)."""
        limit = getattr(self.env, "time_limit_steps", None)
        if limit is None and getattr(self.env, "spec", None) is not None:
            limit = self.env.spec.max_episode_steps
        if limit is None:
            raise ValueError("the env declares no time limit (time_limit_steps or spec.max_episode_steps)")
        return int(limit)

    @property
    def action_dim(self) -> int:
        return self.scale.dim

    def reset(self, seed: int | None = None) -> tuple[GuidedObs, dict[str, Any]]:
        raw, info = self.env.reset(seed=seed)
        self.step_count = 0
        self._replan(raw)
        return self._view(raw), info

    def step(self, env_action: np.ndarray) -> tuple[GuidedObs, float, bool, bool, dict[str, Any]]:
        raw, _, env_terminated, env_truncated, info = self.env.step(env_action)
        self.step_count += 1
        reward, success = self.reward_source(raw, info)
        terminated = bool(env_terminated or success)
        truncated = bool(env_truncated or self.step_count >= self.time_limit_steps) and not terminated
        info = dict(info)
        info["reward_success"] = success
        self._row += 1
        if self._row >= min(self.execute_steps, self._chunk.horizon):
            self._replan(raw)  # also at the last observation: replay needs its base action
        return self._view(raw), float(reward), terminated, truncated, info

    def close(self) -> None:
        self.env.close()

    def _replan(self, raw: Mapping[str, Any]) -> None:
        self._chunk = self.backend.predict(self.backend_input(raw))
        self._row = 0
        self.predictions += 1

    def _view(self, raw: Mapping[str, Any]) -> GuidedObs:
        proprio = np.asarray(raw["proprio"], dtype=np.float32).reshape(-1)
        if self.observation == "vla":
            if self._chunk.features is None:
                raise ValueError("the base backend returns no features; use observation 'proprio'")
            fields = {
                "features": np.asarray(self._chunk.features, np.float32).reshape(-1),
                "proprio": proprio,
            }
        elif self.observation == "privileged":
            fields = {"privileged": np.asarray(raw["privileged"], np.float32).reshape(-1), "proprio": proprio}
        else:
            fields = {"proprio": proprio}
        base = self.scale.normalise(self._chunk.actions[self._row])
        return GuidedObs(raw=raw, fields=fields, base_action=base)
