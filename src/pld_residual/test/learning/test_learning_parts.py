"""Pure parts of the learning loop: config, action mapping, reward source, plans, roll-in curriculum."""

from __future__ import annotations

import numpy as np
import pytest

from pld_residual.agent.config import ResidualSACConfig
from pld_residual.learning.action_space import ActionScale, agent_base, executed_action, update_xis
from pld_residual.learning.config import DEFAULT_EXECUTE_STEPS, LearnConfig
from pld_residual.learning.curriculum import RollInCurriculum, RollInPlan, episode_plan
from pld_residual.learning.methods import METHODS
from pld_residual.learning.rewards import PredicateReward, RewardSource, make_reward_source

LIMITS = np.array([0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0], np.float32)


def test_config_round_trip_and_validation() -> None:
    cfg = LearnConfig(method="rlpd", agent={"hidden": 64})
    assert LearnConfig.from_dict(cfg.to_dict()) == cfg
    assert LearnConfig().warmup_episodes == 100 and LearnConfig().total_env_steps == 50_000
    from pld_vla_server.evaluation import DEFAULT_EXECUTE_STEPS as VLA_DEFAULT

    assert DEFAULT_EXECUTE_STEPS == VLA_DEFAULT == LearnConfig().execute_steps
    with pytest.raises(ValueError, match="unknown LearnConfig"):
        LearnConfig.from_dict({"steps": 3})
    with pytest.raises(ValueError, match="unknown method"):
        LearnConfig(method="ppo")
    with pytest.raises(ValueError, match="probing_alpha"):
        LearnConfig(probing_alpha=1.5)
    with pytest.raises(ValueError, match="unknown ResidualSACConfig"):
        LearnConfig(agent={"hiden": 3})


def test_base_is_normalised_and_the_executed_action_is_limits_times_combine() -> None:
    import pld_sim

    scale = ActionScale.from_space(pld_sim.make("pick_cube", render_images=False).action_space)
    np.testing.assert_allclose(scale.high, LIMITS)
    base_physical = np.array([0.01, -0.03, 0.0, 0.05, 0.0, -0.1, 0.5], np.float32)
    base = scale.normalise(base_physical)
    np.testing.assert_allclose(base, [0.5, -1.0, 0.0, 0.5, 0.0, -1.0, 0.5])
    delta = np.array([1, 1, -1, 0, 0, 0, 1], np.float32)
    norm, physical = executed_action(base, delta, 0.5, scale, guided=True)
    np.testing.assert_allclose(norm, np.clip(base + 0.5 * delta, -1, 1))
    np.testing.assert_allclose(physical, LIMITS * norm)
    # without base guidance the agent's output is the whole action
    norm, physical = executed_action(base, delta * 0.3, 0.5, scale, guided=False)
    np.testing.assert_allclose(norm, delta * 0.3, rtol=1e-6)
    assert not agent_base(base, guided=False).any()
    config = ResidualSACConfig(xi_initial=0.1, xi_final=0.5, xi_warmup_steps=4)
    np.testing.assert_allclose(update_xis(2, 4, config, True), [0.3, 0.4, 0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(update_xis(2, 4, config, False), 1.0)


def test_predicate_reward_is_binary_on_success() -> None:
    source = make_reward_source("predicate")
    assert isinstance(source, PredicateReward) and isinstance(source, RewardSource)
    assert source({}, {"success": True}) == (1.0, True)
    assert source({}, {"success": False}) == (0.0, False)


def test_classifier_reward_judges_the_cameras_with_the_calibrated_threshold(tmp_path) -> None:
    from pld_reward import checkpoint
    from pld_reward.config import ClassifierConfig
    from pld_reward.model import init_params
    from pld_reward.preprocess import FrameError

    cfg = ClassifierConfig(image_size=32, input_size=16, encoder_widths=(4, 4, 8, 8), head_hidden=8)
    frame = {"images": {name: np.zeros((32, 32, 3), np.uint8) for name in cfg.cameras}}
    for threshold, expected in ((0.0, (1.0, True)), (1.0, (0.0, False))):  # sigmoid is in (0, 1)
        checkpoint.save(tmp_path / str(threshold), cfg, init_params(cfg), {"thresholds": [threshold]})
        source = make_reward_source("classifier", checkpoint=str(tmp_path / str(threshold)), task="pick_cube")
        assert isinstance(source, RewardSource)
        assert source(frame, {"success": not expected[1]}) == expected  # the predicate is not consulted
    with pytest.raises(FrameError, match="missing camera"):
        source({"images": {"side": frame["images"]["side"]}}, {})
    with pytest.raises(ValueError, match="not judged by this classifier"):
        make_reward_source("classifier", checkpoint=str(tmp_path / "0.0"), task="peg_insertion")
    with pytest.raises(ValueError, match="reward_checkpoint"):
        LearnConfig(reward="classifier")


def test_plans_per_method() -> None:
    rng = np.random.default_rng(0)
    pld = episode_plan(METHODS["pld"], rng, 0, 50, 0.5, 2)
    assert pld.warmup
    probing = [episode_plan(METHODS["pld"], rng, 5, 50, 0.5, 2).base_steps for _ in range(200)]
    assert min(probing) == 0 and max(probing) == 25
    assert episode_plan(METHODS["sac"], rng, 0, 50, 0.5, 2).base_steps == 0
    assert episode_plan(METHODS["wsrl"], rng, 1, 50, 0.5, 2).warmup
    assert not episode_plan(METHODS["rlpd"], rng, 0, 50, 0.5, 2).warmup
    curriculum = RollInCurriculum(50, stages=5, window=2)
    plan = episode_plan(METHODS["jsrl"], rng, 0, 50, 0.5, 2, curriculum)
    assert isinstance(plan, RollInPlan) and plan.base_steps == 50
    assert plan.controller(10) == "base" and plan.goes_to_replay(10) and plan.replay_start_step == 0


def test_rollin_curriculum_shrinks_while_success_holds_up() -> None:
    curriculum = RollInCurriculum(40, stages=4, window=2, tolerance=0.1)
    assert curriculum.horizon == 40
    curriculum.record(True)
    curriculum.record(False)  # stage 0 sets the reference: 0.5
    assert curriculum.stage == 1 and curriculum.horizon == 30 and curriculum.best_rate == 0.5
    curriculum.record(False)
    curriculum.record(False)  # 0.0 < 0.45: stay
    assert curriculum.stage == 1
    curriculum.record(True)  # window [False, True] = 0.5: advance
    assert curriculum.stage == 2 and curriculum.horizon == 20
    assert RollInCurriculum.from_dict(curriculum.to_dict()) == curriculum
