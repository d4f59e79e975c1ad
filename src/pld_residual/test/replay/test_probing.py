"""Probing schedule: T_base bounds and distribution, who drives each step, what goes to replay, warm-up."""

from __future__ import annotations

import numpy as np
import pytest

from pld_residual.replay import EpisodePlan, ProbingConfig, max_base_steps, sample_base_steps


def test_t_base_covers_0_to_alpha_t_inclusive_roughly_uniformly() -> None:
    rng = np.random.default_rng(0)
    draws = np.array([sample_base_steps(rng, 0.3, 50) for _ in range(16_000)])
    assert draws.min() == 0 and draws.max() == 15  # floor(0.3 * 50) = 15, both ends included
    counts = np.bincount(draws, minlength=16)
    assert len(counts) == 16
    # 16 equally likely values, 1000 expected each; 5 sigma ~ 150
    assert np.all(np.abs(counts - 1000) < 150), counts


def test_t_base_edge_cases() -> None:
    rng = np.random.default_rng(1)
    assert {sample_base_steps(rng, 0.0, 200) for _ in range(50)} == {0}
    assert max(sample_base_steps(rng, 1.0, 4) for _ in range(200)) == 4  # the base may drive it all
    assert max_base_steps(0.29, 100) == 29  # 0.29 * 100 = 28.999999999999996 in floating point
    assert max_base_steps(0.5, 7) == 3  # floor, not round
    with pytest.raises(ValueError, match="alpha"):
        sample_base_steps(rng, 1.2, 10)
    with pytest.raises(ValueError, match="time_limit_steps"):
        sample_base_steps(rng, 0.5, 0)


def test_plan_controller_and_replay_routing() -> None:
    plan = EpisodePlan(base_steps=3, time_limit_steps=8)
    assert [plan.controller(t) for t in range(8)] == ["base"] * 3 + ["residual"] * 5
    assert [plan.goes_to_replay(t) for t in range(8)] == [False] * 3 + [True] * 5
    assert plan.replay_start_step == 3
    with pytest.raises(ValueError, match="outside the episode"):
        plan.controller(8)
    zero = EpisodePlan(base_steps=0, time_limit_steps=4)
    assert all(zero.goes_to_replay(t) and zero.controller(t) == "residual" for t in range(4))
    with pytest.raises(ValueError, match="base_steps"):
        EpisodePlan(base_steps=9, time_limit_steps=8)


def test_warmup_is_base_driven_and_goes_to_replay() -> None:
    config = ProbingConfig(alpha=0.5, time_limit_steps=10, warmup_episodes=2)
    rng = np.random.default_rng(0)
    state_before = rng.bit_generator.state
    warm = [config.plan(rng, i) for i in range(2)]
    assert rng.bit_generator.state == state_before  # warm-up draws nothing
    for plan in warm:
        assert plan.warmup and plan.replay_start_step == 0
        assert all(plan.controller(t) == "base" and plan.goes_to_replay(t) for t in range(10))
    probing = [config.plan(rng, i) for i in range(2, 200)]
    assert not any(p.warmup for p in probing)
    assert {p.base_steps for p in probing} == set(range(6))


def test_config_defaults_and_dict_round_trip() -> None:
    config = ProbingConfig(alpha=0.6, time_limit_steps=200)
    assert config.warmup_episodes == 100  # PLD's 100 base-only warm-up episodes
    assert ProbingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown key"):
        ProbingConfig.from_dict({"alpha": 0.5, "time_limit_steps": 10, "T": 3})
    with pytest.raises(ValueError, match="warmup_episodes"):
        ProbingConfig(alpha=0.5, time_limit_steps=10, warmup_episodes=-1)
