"""Closed-loop evaluation: success rate, Wilson CI, per-seed outcomes and chunk execution every K steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

import pld_sim
from pld_sim.experts import make_expert
from pld_vla_server.backends import make_backend
from pld_vla_server.backends.base import VLABackend
from pld_vla_server.evaluation import EvalConfig, evaluate_backend, to_vla_observation
from pld_vla_server.types import ActionChunk, InputSpec, VLAObservation, validate_observation


def test_hold_backend_never_picks_the_cube() -> None:
    calls: list[dict] = []
    result = evaluate_backend(
        make_backend("hold"),
        "pick_cube",
        episodes=2,
        execute_steps=4,
        progress=False,
        on_episode=calls.append,
    )
    assert result["successes"] == 0 and result["success_rate"] == 0.0
    low, high = result["success_rate_ci95"]
    assert low == 0.0 and 0.6 < high < 0.7  # Wilson 95 % upper bound for 0/2 is 0.658
    assert [o["seed"] for o in result["per_seed"]] == [10_000, 10_001] == [c["seed"] for c in calls]
    for outcome in result["per_seed"]:
        assert outcome["success"] is False
        assert outcome["length"] == 200  # ran into the 10 s time limit
        assert outcome["predictions"] == 50  # one chunk every 4 steps
    assert result["mean_length_steps"] == 200 and result["mean_success_length_steps"] is None


def test_whole_chunk_execution_predicts_once_per_horizon() -> None:
    result = evaluate_backend(
        make_backend("hold", {"horizon": 10}), "pick_cube", episodes=1, execute_steps=None, progress=False
    )
    assert result["per_seed"][0]["predictions"] == 20


@dataclass(frozen=True)
class ReplayConfig:
    horizon: int = 4

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReplayConfig:
        return cls(**values)


class ReplayBackend(VLABackend):
    """Plays a recorded action sequence open-loop, `advance` rows per prediction: the positive control
    (the simulator is deterministic, so replaying the expert's actions on the same seed must succeed
    exactly when the evaluation runs K = `advance` rows of each chunk)."""

    name: ClassVar[str] = "replay-test"
    config_type: ClassVar[type] = ReplayConfig

    def __init__(self, actions: np.ndarray, horizon: int, advance: int) -> None:
        super().__init__(ReplayConfig(horizon))
        self.actions, self.cursor, self.advance = actions, 0, advance

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec()

    def predict(self, obs: VLAObservation) -> ActionChunk:
        validate_observation(obs, self.input_spec)
        index = np.minimum(np.arange(self.cursor, self.cursor + self.config.horizon), len(self.actions) - 1)
        self.cursor += self.advance
        return ActionChunk(self.actions[index])


def expert_actions(task: str, seed: int) -> np.ndarray:
    env = pld_sim.make(task, render_images=False)
    obs, _ = env.reset(seed=seed)
    expert = make_expert(env, seed=seed)
    actions, done = [], False
    while not done:
        actions.append(expert.act(obs))
        obs, _, terminated, truncated, _ = env.step(actions[-1])
        done = terminated or truncated
    return np.asarray(actions, dtype=np.float32)


def test_replaying_the_expert_with_matching_k_succeeds() -> None:
    actions = expert_actions("pick_cube", 10_000)
    backend = ReplayBackend(actions, horizon=5, advance=3)
    result = evaluate_backend(backend, "pick_cube", episodes=1, execute_steps=3, progress=False)
    assert result["successes"] == 1 and result["success_rate_ci95"][0] > 0.1
    assert result["per_seed"][0]["length"] == len(actions)
    assert result["per_seed"][0]["predictions"] == int(np.ceil(len(actions) / 3))
    assert result["mean_success_length_steps"] == len(actions)


def test_observation_conversion_passes_only_what_a_robot_has() -> None:
    env = pld_sim.make("pick_cube", image_size=32)
    obs, _ = env.reset(seed=1)
    vla_obs = to_vla_observation(obs, cameras=("side",))
    assert set(vla_obs.images) == {"side"} and vla_obs.images["side"].shape == (32, 32, 3)
    assert vla_obs.proprio.dtype == np.float32 and vla_obs.proprio.shape == (15,)
    assert vla_obs.instruction == "pick up the blue cube"
    assert not hasattr(vla_obs, "privileged")


def test_eval_config_validates() -> None:
    with pytest.raises(ValueError):
        EvalConfig(episodes=0)
    with pytest.raises(ValueError):
        EvalConfig(execute_steps=0)
