"""A toy task for the learning loop: a point must reach a goal that the toy base policy misses.

`ToyReachEnv` is a real gymnasium env (not a mock of our classes) with pld_sim's 7-D action interface and
limits; only `action[0]` (dx) moves the point. `ToyBase` is a real base policy behind the backend
interface (`predict(VLAObservation) -> ActionChunk` with features): a proportional controller whose aim is
off by +1 cm for goals above -0.06 (about 80 % of episodes), so alone it succeeds ~20 % of the time, while
a constant residual of about -0.5 (xi = 0.5) fixes every case.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from pld_vla_server.types import ActionChunk, InputSpec, VLAObservation

HIGH = np.array([0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0], np.float32)
TOLERANCE = 0.004
OFFSET = 0.01
GAIN = 0.5


class ToyReachEnv(gym.Env):
    """1-D reach: position p, goal g; success when |p - g| < 4 mm; 25 steps."""

    time_limit_steps = 25

    def __init__(self) -> None:
        self.action_space = gym.spaces.Box(-HIGH, HIGH, (7,), np.float32)
        self.p = self.g = 0.0
        self.step_count = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.g = float(self.np_random.uniform(-0.1, 0.1))
        self.p = self.g + float(self.np_random.uniform(0.03, 0.08))
        self.step_count = 0
        return self._obs(), {"success": False}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, np.float64), -HIGH, HIGH)
        self.p += float(action[0])
        self.step_count += 1
        success = abs(self.p - self.g) < TOLERANCE
        truncated = self.step_count >= self.time_limit_steps and not success
        return self._obs(), float(success), success, truncated, {"success": success}

    def _obs(self) -> dict[str, Any]:
        return {
            "proprio": np.array([self.p, self.g], np.float32),
            "privileged": np.array([self.g - self.p], np.float32),
            "images": {"side": np.zeros((8, 8, 3), np.uint8)},
            "instruction": "reach the goal",
        }


class ToyBase:
    """Chunks of a proportional controller aiming at g + 1 cm (g + 0 for goals below -0.06)."""

    input_spec = InputSpec(cameras=("side",), image_size=8, proprio_dim=2)

    def __init__(self, horizon: int = 4) -> None:
        self.horizon = horizon

    def predict(self, obs: VLAObservation) -> ActionChunk:
        p, g = (float(x) for x in obs.proprio)
        target = g + (0.0 if g < -0.06 else OFFSET)
        actions = np.zeros((self.horizon, 7), np.float32)
        for row in range(self.horizon):
            dx = float(np.clip(GAIN * (target - p), -HIGH[0], HIGH[0]))
            actions[row, 0] = dx
            p += dx
        features = np.array([20.0 * (target - float(obs.proprio[0])), 1.0], np.float32)
        return ActionChunk(actions=actions, features=features, model_id="toy-base")


def base_only_success_rate(episodes: int = 200, first_seed: int = 10_000) -> float:
    """The toy base alone, executing every chunk row (as the loop does with execute_steps = horizon)."""
    env, base = ToyReachEnv(), ToyBase()
    from pld_vla_server.evaluation import run_policy_episode

    outcomes = [run_policy_episode(base, env, first_seed + i, None)["success"] for i in range(episodes)]
    return float(np.mean(outcomes))


# Small networks and a low initial temperature: with the paper's 1.0 the entropy bonus outweighs a sparse
# reward of 1 for thousands of steps, far beyond a test budget.
TOY_AGENT = dict(
    hidden=64, actor_layers=2, critic_layers=2, batch_size=64, updates_per_call=10,
    xi_initial=0.5, xi_final=0.5, xi_warmup_steps=0, cql_num_samples=4, init_temperature=0.02,
)  # fmt: skip


def toy_config(**changes: Any) -> Any:
    from pld_residual.learning.config import LearnConfig

    values: dict[str, Any] = dict(
        task="toy_reach", method="pld", total_env_steps=3000, warmup_episodes=5, probing_alpha=0.5,
        offline_episodes=10, offline_max_attempts=100, critic_pretrain_steps=200, eval_every_steps=1000,
        eval_episodes=50, execute_steps=4, seed=0, checkpoint_every=1000, buffer_capacity=20_000,
        agent=dict(TOY_AGENT),
    )  # fmt: skip
    values.update(changes)
    return LearnConfig(**values)


@pytest.fixture
def toy_env_factory():
    return ToyReachEnv


@pytest.fixture
def toy_base() -> ToyBase:
    return ToyBase()


@pytest.fixture
def make_toy_config():
    return toy_config


@pytest.fixture
def base_success_rate():
    return base_only_success_rate
