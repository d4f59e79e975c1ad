"""`peg_insertion`: seeded resets, the fixture pose in the saved state, the success rule in the
simulator, and the expert."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

import pld_sim
from pld_sim.experts import ExpertConfig, make_expert
from pld_sim.tasks.base import set_free_body_pose, yaw_quat

TASK = "peg_insertion"


@pytest.fixture(scope="module")
def env():
    environment = pld_sim.make(TASK)
    yield environment
    environment.close()


def hole_top(obs: dict) -> np.ndarray:
    return obs["privileged"][7:10].astype(np.float64)


def test_observation_and_instruction(env) -> None:
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["instruction"] == "insert the peg into the hole" == info["instruction"]
    assert obs["privileged"].shape == (17,)
    assert hole_top(obs)[2] == pytest.approx(env.task.fixture_height)
    assert info["success"] is False


def test_same_seed_same_scene_other_seed_other_scene(env) -> None:
    first, _ = env.reset(seed=21)
    again, _ = env.reset(seed=21)
    other, _ = env.reset(seed=22)
    np.testing.assert_array_equal(first["privileged"], again["privileged"])
    np.testing.assert_array_equal(first["images"]["side"], again["images"]["side"])
    assert not np.array_equal(hole_top(first), hole_top(other)), "the fixture must move between episodes"
    assert not np.array_equal(first["privileged"][:3], other["privileged"][:3])
    assert not np.array_equal(first["images"]["side"], other["images"]["side"])


def test_get_state_set_state_restores_the_fixture(env) -> None:
    obs, _ = env.reset(seed=4)
    state = env.get_state()
    moved, _ = env.reset(seed=5)
    assert not np.allclose(hole_top(moved), hole_top(obs))
    restored, _ = env.reset(options={"state": state})
    np.testing.assert_allclose(restored["privileged"], obs["privileged"], atol=1e-6)
    np.testing.assert_array_equal(restored["images"]["side"], obs["images"]["side"])


def place_peg(env, xy: np.ndarray, bottom_z: float, yaw: float) -> bool:
    model, data = env.model, env.data
    set_free_body_pose(model, data, "peg", [*xy, bottom_z + env.task.peg_half_length], yaw_quat(yaw))
    mujoco.mj_forward(model, data)
    return env.task.success(model, data)


def test_success_needs_the_peg_deep_in_the_hole(env) -> None:
    obs, _ = env.reset(seed=7)
    top = hole_top(obs)
    yaw = 2 * np.arctan2(obs["privileged"][13], obs["privileged"][10])  # the fixture's yaw
    assert place_peg(env, top[:2], top[2] - 0.03, yaw)  # 3 cm deep
    assert not place_peg(env, top[:2], top[2] - 0.01, yaw)  # 1 cm deep
    assert not place_peg(env, top[:2], top[2] + 0.02, yaw)  # above the opening
    beside = top[:2] + np.array([0.0, 0.12])
    assert not place_peg(env, beside, 0.0, yaw)  # standing on the table next to the fixture
    terms = env.task.success_terms(env.model, env.data)
    assert terms["peg_bottom_depth"] == pytest.approx(top[2], abs=1e-6)
    assert terms["peg_lateral_offset"] > terms["hole_half_width"]


def orange_rows(image: np.ndarray) -> int:
    """Image rows with orange (the peg's shaft) in them."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return int(np.any((r > 150) & (g > 60) & (g < 160) & (b < 80), axis=1).sum())


def test_the_fixture_camera_sees_how_deep_the_peg_is(env) -> None:
    """The third camera turns with the fixture and shows less of the orange shaft the deeper the peg goes:
    what tells a 1 cm insertion (failure) from a 2 cm one (success) in images."""
    obs, _ = env.reset(seed=7)
    assert list(obs["images"]) == ["side", "wrist", "fixture"]
    top = hole_top(obs)
    yaw = 2 * np.arctan2(obs["privileged"][13], obs["privileged"][10])
    visible = []
    for depth in (0.0, 0.01, 0.02, 0.03):
        place_peg(env, top[:2], top[2] - depth, yaw)
        visible.append(orange_rows(env.unwrapped._render_camera("fixture")))
    assert visible[0] > visible[1] > visible[2] > visible[3], visible
    assert visible[1] - visible[2] >= 12, visible  # 1 cm of shaft: ~17 rows at 128 px


def test_peg_and_fixture_never_overlap_at_reset(env) -> None:
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        gap = np.linalg.norm(obs["privileged"][:2] - hole_top(obs)[:2])
        assert gap > np.sqrt(2) * env.task.fixture_half_width + 0.066


def test_scripted_expert_inserts_the_peg(env) -> None:
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        expert = make_expert(env, ExpertConfig(), seed=seed)
        for _ in range(env.time_limit_steps):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        assert terminated and info["success"] and reward == 1.0, info["success_terms"]
