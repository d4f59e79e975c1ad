"""GPU insertion on the YAM: predicates, slot geometry, per-stage resets, slot clips, experts, stability."""

from __future__ import annotations

import numpy as np
import pytest

import pld_sim
from pld_sim import predicates
from pld_sim.experts import make_expert
from pld_sim.tasks import gpu_insertion as gpu
from pld_sim.tasks.base import yaw_quat

STAGES = [f"gpu_insertion_stage{k}" for k in range(1, 5)]
UPRIGHT = {"axial_offset": 0.0, "lateral_offset": 0.0, "tilt": 0.0}


# ---------------------------------------------------------------- predicates on constructed numbers


@pytest.mark.parametrize(
    ("terms", "inserted", "seated"),
    [
        ({"depth": 0.016, **UPRIGHT}, True, False),  # resting on the clips
        ({"depth": 0.025, **UPRIGHT}, True, True),  # on the slot's bottom
        ({"depth": 0.004, **UPRIGHT}, False, False),  # only in the funnel
        ({"depth": -0.03, **UPRIGHT}, False, False),  # above the slot
        ({**UPRIGHT, "depth": 0.025, "lateral_offset": 0.06}, False, False),  # in the neighbouring slot
        ({**UPRIGHT, "depth": 0.025, "axial_offset": 0.05}, False, False),  # beside the slot's end
        ({**UPRIGHT, "depth": 0.016, "tilt": 0.5}, False, False),  # jammed at an angle
    ],
)
def test_insertion_predicates(terms: dict, inserted: bool, seated: bool) -> None:
    assert predicates.gpu_inserted(**terms) is inserted
    assert predicates.gpu_seated(**terms) is seated


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, True),
        ({"card_bottom_z": 0.03}, False),  # still in the air
        ({"over_board": True}, False),  # put down on the motherboard, not the table
        ({"inserted": True}, False),
        ({"held": True}, False),  # not let go
        ({"speed": 0.2}, False),  # still falling or sliding
    ],
)
def test_on_table_predicate(kwargs: dict, expected: bool) -> None:
    args = {"card_bottom_z": 0.001, "table_z": 0.0, "over_board": False, "inserted": False, "held": False}
    args["speed"] = 0.0
    args.update(kwargs)
    assert predicates.gpu_on_table(**args) is expected


def test_card_in_slot_frame_on_constructed_poses() -> None:
    slot_pos, slot_quat = np.array([0.3, 0.1, 0.006]), yaw_quat(0.2)
    rot = np.array([[np.cos(0.2), -np.sin(0.2), 0], [np.sin(0.2), np.cos(0.2), 0], [0, 0, 1]])
    # a card 3 mm along the slot, 1 mm sideways, 5 mm above the floor, turned end for end (symmetric)
    card_pos = slot_pos + rot @ np.array([0.003, 0.001, 0.005])
    terms = gpu.card_in_slot_frame(card_pos, yaw_quat(0.2 + np.pi), slot_pos, slot_quat)
    assert terms["depth"] == pytest.approx(gpu.WALL_HEIGHT - 0.005)
    assert terms["axial_offset"] == pytest.approx(0.003)
    assert terms["lateral_offset"] == pytest.approx(0.001)
    assert terms["tilt"] == pytest.approx(0.0, abs=1e-7)
    assert terms["yaw_error"] == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------- resets


@pytest.fixture(scope="module")
def envs():
    made = {name: pld_sim.make(name, image_size=64) for name in STAGES}
    yield made
    for env in made.values():
        env.close()


@pytest.mark.parametrize("stage", STAGES)
def test_reset_is_deterministic_in_the_seed_and_starts_unsolved(envs, stage: str) -> None:
    env = envs[stage]
    obs, info = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    np.testing.assert_array_equal(obs["privileged"], again["privileged"])
    for camera in ("side", "wrist"):
        np.testing.assert_array_equal(obs["images"][camera], again["images"][camera])
    assert not np.allclose(obs["privileged"], other["privileged"])
    assert obs["privileged"].shape == (len(gpu.PRIVILEGED_NAMES),)
    assert info["success"] is False
    assert obs["instruction"] == env.task.instruction()


def test_stage_start_states(envs) -> None:
    """Stage 1 starts on the table, 2 seated in slot 1, 3 partially in slot 3, 4 seated in slot 3."""
    expect = {1: (None, None), 2: (1, True), 3: (3, False), 4: (3, True)}
    for k, (slot, seated) in expect.items():
        env = envs[f"gpu_insertion_stage{k}"]
        _, info = env.reset(seed=3)
        terms = info["success_terms"]
        inserted = {s: predicates.gpu_inserted(**env.task._slot_args(terms, s)) for s in gpu.REAL_SLOTS}
        if slot is None:
            assert not any(inserted.values()) and terms["card_bottom_z"] < 0.002
            continue
        assert inserted[slot] and not inserted[4 - slot]
        assert predicates.gpu_seated(**env.task._slot_args(terms, slot)) is seated


def test_alias_is_stage_one() -> None:
    env = pld_sim.make("gpu_insertion", render_images=False)
    obs, _ = env.reset(seed=0)
    assert obs["instruction"] == "insert the GPU into slot 1"
    reference = pld_sim.make("gpu_insertion_stage1", render_images=False)
    np.testing.assert_array_equal(obs["privileged"], reference.reset(seed=0)[0]["privileged"])


# ---------------------------------------------------------------- the slot's retention clips


def _hold_still(env, steps: int) -> dict:
    for _ in range(steps):
        _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
    return info["success_terms"]


def test_a_partially_inserted_card_stays_partially_inserted(envs) -> None:
    """The clips carry the card's weight: left alone it neither drops into the seat nor falls out."""
    env = envs["gpu_insertion_stage3"]
    env.reset(seed=0)
    terms = _hold_still(env, 60)
    args = env.task._slot_args(terms, 3)
    assert predicates.gpu_inserted(**args) and not predicates.gpu_seated(**args), args


def test_a_seated_card_stays_seated(envs) -> None:
    env = envs["gpu_insertion_stage4"]
    env.reset(seed=0)
    terms = _hold_still(env, 60)
    assert predicates.gpu_seated(**env.task._slot_args(terms, 3))


# ---------------------------------------------------------------- experts and stability


@pytest.mark.parametrize("stage", STAGES)
def test_expert_solves_the_stage(stage: str) -> None:
    env = pld_sim.make(stage, render_images=False)
    for seed in (0, 1, 2):
        obs, info = env.reset(seed=seed)
        expert = make_expert(env, seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
        assert info["success"], f"{stage} seed {seed}: {info['success_terms']}"
