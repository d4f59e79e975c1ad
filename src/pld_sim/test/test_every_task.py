"""Contracts every registered task keeps: stable physics, an expert, deterministic resets, an instruction."""

from __future__ import annotations

import numpy as np
import pytest

import pld_sim
from pld_sim.experts import EXPERTS
from pld_sim.robots import ROBOTS

TASK_NAMES = sorted(pld_sim.TASKS)


PAPER_TASKS = {
    "pick_cube",
    "pick_cube_cluttered",
    "peg_insertion",
    "gpu_insertion",
    *(f"gpu_insertion_stage{k}" for k in range(1, 5)),
}


def test_the_paper_tasks_are_registered() -> None:
    assert sorted(PAPER_TASKS - set(TASK_NAMES)) == []


@pytest.mark.parametrize("task", TASK_NAMES)
def test_1000_random_steps_without_warnings_nans_or_runaway_velocities(task: str) -> None:
    env = pld_sim.make(task, render_images=False, time_limit_s=1000.0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        env.step(rng.uniform(env.action_space.low, env.action_space.high))
        assert np.all(np.isfinite(env.data.qpos)) and np.all(np.isfinite(env.data.qvel))
        assert np.abs(env.data.qvel).max() < 50.0, "a body is running away"
    warnings = {int(i): int(w.number) for i, w in enumerate(env.data.warning) if w.number}
    assert warnings == {}, f"MuJoCo warnings (mjtWarning index: count): {warnings}"


@pytest.mark.parametrize("task", TASK_NAMES)
def test_task_has_an_expert_a_robot_and_an_instruction(task: str) -> None:
    env = pld_sim.make(task, render_images=False)
    obs, info = env.reset(seed=1)
    assert task in EXPERTS
    assert env.robot.name in ROBOTS
    assert isinstance(obs["instruction"], str) and len(obs["instruction"]) > 5
    assert info["success"] is False, "the start state must not already be a success"


@pytest.mark.parametrize("task", TASK_NAMES)
def test_same_seed_same_start_other_seed_other_start(task: str) -> None:
    env = pld_sim.make(task, image_size=32)
    first, _ = env.reset(seed=1)
    again, _ = env.reset(seed=1)
    other, _ = env.reset(seed=2)
    np.testing.assert_array_equal(first["privileged"], again["privileged"])
    np.testing.assert_array_equal(first["images"]["side"], again["images"]["side"])
    np.testing.assert_array_equal(first["images"]["wrist"], again["images"]["wrist"])
    assert not np.array_equal(first["privileged"], other["privileged"])
