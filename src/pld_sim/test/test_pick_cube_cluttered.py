"""`pick_cube_cluttered`: seeded resets, the target/distractor logic, state round trip and the expert."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

import pld_sim
from pld_sim.experts import ExpertConfig, make_expert
from pld_sim.tasks.base import set_free_body_pose
from pld_sim.tasks.pick_cube_cluttered import COLORS, TARGET_COLORS, cube_body, target_clearance

TASK = "pick_cube_cluttered"


@pytest.fixture(scope="module")
def env():
    environment = pld_sim.make(TASK)
    yield environment
    environment.close()


def on_table(obs: dict) -> np.ndarray:
    """Positions of the non-target cubes that are on the table, from the privileged state."""
    slots = obs["privileged"][8:].reshape(-1, 4)
    return slots[slots[:, 3] > 0.5, :3]


def test_observation_and_instruction_name_the_target(env) -> None:
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    target = env.task.target
    assert obs["instruction"] == f"pick up the {target} cube" == info["instruction"]
    # the privileged state starts with the target cube, which has the colour the instruction names
    target_id = env.model.body(cube_body(target)).id
    np.testing.assert_allclose(obs["privileged"][:3], env.data.xpos[target_id], atol=1e-6)
    geom = env.model.body_geomadr[target_id]
    np.testing.assert_allclose(env.model.geom_rgba[geom], COLORS[target], atol=1e-6)
    assert info["success"] is False


def test_same_seed_same_scene_other_seed_other_scene(env) -> None:
    first, _ = env.reset(seed=11)
    again, _ = env.reset(seed=11)
    other, _ = env.reset(seed=12)
    np.testing.assert_array_equal(first["privileged"], again["privileged"])
    np.testing.assert_array_equal(first["images"]["side"], again["images"]["side"])
    assert first["instruction"] == again["instruction"]
    assert not np.array_equal(first["privileged"], other["privileged"])
    assert not np.array_equal(first["images"]["side"], other["images"]["side"])


def test_targets_vary_and_distractors_are_other_colours_spaced_apart(env) -> None:
    targets, counts = set(), set()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        target = env.task.target
        targets.add(target)
        assert target in TARGET_COLORS
        others = on_table(obs)
        counts.add(len(others))
        # the distractor slots are the other colours, flagged when that cube is on the table
        assert target not in env.task.distractor_colors
        flags = obs["privileged"][8:].reshape(-1, 4)[:, 3] > 0.5
        for color, flag in zip(env.task.distractor_colors, flags, strict=True):
            assert (env.data.xpos[env.model.body(cube_body(color)).id][2] > 0) == flag
        gaps = np.linalg.norm(others[:, :2] - obs["privileged"][:2], axis=1)
        assert gaps.min() >= target_clearance(env.task.cube_half_size) - 1e-6
    assert targets == set(TARGET_COLORS)
    assert counts == {2, 3}


def test_get_state_set_state_restores_the_target(env) -> None:
    seeds = {}
    for seed in range(10):
        env.reset(seed=seed)
        seeds.setdefault(env.task.target, seed)
    blue, red = seeds["blue"], seeds["red"]
    env.reset(seed=blue)
    env.step(np.zeros(7))
    state = env.get_state()
    expected = env.step(np.zeros(7))[0]
    env.reset(seed=red)
    assert env.task.target == "red"
    env.set_state(state)
    assert env.task.target == "blue"
    replay = env.step(np.zeros(7))[0]
    assert replay["instruction"] == expected["instruction"] == "pick up the blue cube"
    np.testing.assert_allclose(replay["privileged"], expected["privileged"], atol=1e-9)
    with pytest.raises(ValueError):
        env.task.set_task_state({"target": "green"})
    with pytest.raises(ValueError):
        env.task.set_task_state({})


def test_a_lifted_distractor_is_not_success(env) -> None:
    env.reset(seed=3)
    model, data = env.model, env.data
    distractor = next(c for c in env.task.distractor_colors if data.xpos[model.body(cube_body(c)).id][2] > 0)
    set_free_body_pose(model, data, cube_body(distractor), [0.3, 0.3, 0.3])
    mujoco.mj_forward(model, data)
    terms = env.task.success_terms(model, data)
    assert terms["distractors_lifted"] == 1.0
    assert not env.task.success(model, data)


def test_scripted_expert_picks_the_named_cube(env) -> None:
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        expert = make_expert(env, ExpertConfig(), seed=seed)
        for _ in range(env.time_limit_steps):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        assert terminated and info["success"] and reward == 1.0, info["success_terms"]
        assert info["success_terms"]["distractors_lifted"] == 0.0
