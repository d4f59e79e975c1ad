"""The gymnasium env on `pick_cube`: spaces, determinism, bad input, state round trip, the expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import pld_sim
from pld_sim.env import SimConfig
from pld_sim.experts import ExpertConfig, make_expert


@pytest.fixture(scope="module")
def env():
    environment = pld_sim.make("pick_cube")
    yield environment
    environment.close()


def test_observation_matches_its_space(env) -> None:
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(obs["images"]) == {"side", "wrist"}
    size = env.cfg.image_size
    assert obs["images"]["side"].shape == obs["images"]["wrist"].shape == (size, size, 3) == (128, 128, 3)
    assert len(env.proprio_names) == obs["proprio"].shape[0] == 15
    assert obs["instruction"] == "pick up the blue cube" == info["instruction"]
    assert info["success"] is False


def test_same_seed_same_state_and_frame(env) -> None:
    first, _ = env.reset(seed=11)
    again, _ = env.reset(seed=11)
    other, _ = env.reset(seed=12)
    np.testing.assert_array_equal(first["privileged"], again["privileged"])
    np.testing.assert_array_equal(first["images"]["side"], again["images"]["side"])
    assert not np.array_equal(first["privileged"], other["privileged"])


@pytest.mark.parametrize(
    "bad", [np.full(7, np.nan), np.zeros(6), np.zeros((7, 1)), [0, 0, 0, 0, 0, np.inf, 0]]
)
def test_bad_actions_raise_value_error(env, bad) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(bad)


def test_unknown_task_and_bad_options_raise_value_error() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        pld_sim.make("pick_banana")
    with pytest.raises(ValueError, match="unknown simulation options"):
        pld_sim.make("pick_cube", colour="red")
    with pytest.raises(ValueError):
        SimConfig(physics_dt=0.003)  # 50 ms is not a whole number of 3 ms steps


def test_zero_action_holds_the_arm_still(env) -> None:
    obs, _ = env.reset(seed=3)
    for _ in range(20):
        obs_after, *_ = env.step(np.zeros(7))
    assert np.linalg.norm(obs_after["proprio"][:3] - obs["proprio"][:3]) < 2e-3


def test_get_state_set_state_replays_the_same_future(env) -> None:
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(rng.uniform(env.action_space.low, env.action_space.high))
    state = env.get_state()
    actions = rng.uniform(env.action_space.low, env.action_space.high, size=(5, 7))
    first = [env.step(a)[0]["proprio"] for a in actions]
    env.set_state(state)
    second = [env.step(a)[0]["proprio"] for a in actions]
    np.testing.assert_allclose(np.array(first), np.array(second), atol=1e-9)
    env.reset(options={"state": state})
    assert env.step_count == state["step"]


def test_time_limit_truncates() -> None:
    env = pld_sim.make("pick_cube", render_images=False, time_limit_s=0.5)
    env.reset(seed=0)
    flags = [env.step(np.zeros(7))[2:4] for _ in range(10)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def test_scripted_expert_picks_the_cube(env) -> None:
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        expert = make_expert(env, ExpertConfig(), seed=seed)
        for _ in range(env.time_limit_steps):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        assert terminated and info["success"] and reward == 1.0, info["success_terms"]


def test_env_checker_accepts_the_env() -> None:
    from gymnasium.utils.env_checker import check_env

    env = pld_sim.make("pick_cube", image_size=32)
    check_env(env, skip_render_check=True)
    assert isinstance(env, gym.Env)
