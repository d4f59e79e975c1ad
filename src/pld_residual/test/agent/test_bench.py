"""The update-rate benchmark returns positive figures (tiny config, about a second per measurement)."""

from __future__ import annotations

import pytest

from pld_residual.agent.bench import compare_with_sb3, measure_updates_per_second
from pld_residual.agent.config import ResidualSACConfig


def test_ours_reports_positive_rates(tiny_config: ResidualSACConfig, obs_dim: int) -> None:
    result = measure_updates_per_second(tiny_config, obs_dim, seconds=0.5)
    assert result["updates_per_s"] > 0 and result["updates"] >= tiny_config.updates_per_call
    assert result["critic_loss_finite"]


def test_comparison_with_sb3_has_the_keys(tiny_config: ResidualSACConfig, obs_dim: int) -> None:
    pytest.importorskip("stable_baselines3", reason="stable-baselines3 is the peer of this benchmark")
    result = compare_with_sb3(tiny_config, obs_dim, seconds=0.5, like_for_like=False)
    for key in ("updates_per_s", "sb3_updates_per_s", "ratio_vs_sb3"):
        assert result[key] > 0, key
    assert result["config"]["batch_size"] == tiny_config.batch_size
