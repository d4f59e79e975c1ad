"""Every method of the registry runs a few steps on the toy task, in the same harness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pld_residual.learning.methods import METHODS


def test_registry_holds_pld_and_the_paper_baselines() -> None:
    assert {"pld", "rlpd", "wsrl", "jsrl", "sac"} <= set(METHODS)
    assert METHODS["pld"].guided and METHODS["pld"].probing and METHODS["pld"].warmstart
    assert not any(METHODS[name].guided for name in ("rlpd", "wsrl", "jsrl", "sac"))
    assert METHODS["rlpd"].offline_fraction == 0.5 and METHODS["wsrl"].offline_fraction == 0.0
    assert not METHODS["sac"].needs_offline_data
    with pytest.raises(ValueError, match="known methods"):
        METHODS.lookup("ppo")


def test_method_agent_configs() -> None:
    """Warm-start methods get a warm-start loss; unguided ones act on every axis (they own the action)."""
    from pld_residual.agent.config import ResidualSACConfig

    config = ResidualSACConfig(warmstart="none", residual_axes=(0, 1, 5))
    assert METHODS["pld"].agent_config(config) == config.replace(warmstart="calql")
    assert METHODS["wsrl"].agent_config(config) == config.replace(warmstart="calql", residual_axes=None)
    for name in ("rlpd", "jsrl", "sac"):
        assert METHODS[name].agent_config(config) == config.replace(residual_axes=None)
    plain = ResidualSACConfig()
    assert all(METHODS[name].agent_config(plain) == plain for name in ("pld", "rlpd", "jsrl", "sac"))


@pytest.mark.parametrize("name", ["pld", "rlpd", "wsrl", "jsrl", "sac"])
def test_each_method_runs_a_few_steps(
    tmp_path: Path, name: str, toy_env_factory, toy_base, make_toy_config
) -> None:
    cfg = make_toy_config(
        method=name, total_env_steps=150, warmup_episodes=2, offline_episodes=3, critic_pretrain_steps=20,
        eval_every_steps=100, eval_episodes=3, jsrl_window=2,
    )  # fmt: skip
    summary = learn_toy(cfg, tmp_path, toy_base, toy_env_factory)
    method = METHODS[name]
    assert summary["complete"] and summary["env_steps"] == 150 and summary["updates"] > 0
    assert (tmp_path / "policy" / "params.msgpack").is_file()
    assert bool(summary["offline"]) == method.needs_offline_data
    assert ("steps" in summary["warmstart"]) == method.warmstart
    assert (summary["curriculum"] is not None) == method.rollin
    assert summary["xi"] == (0.5 if method.guided else 1.0)
    assert np.isfinite(summary["last_update"]["critic_loss"])


def learn_toy(cfg, out, base, env_factory):
    from pld_residual.learning.loop import learn

    return learn(cfg, out, base_backend=base, env_factory=env_factory, progress=False)
