"""ResidualSACConfig: paper defaults, validation that names the field, dict round trip."""

from __future__ import annotations

import json

import pytest

from pld_residual.agent.config import ResidualSACConfig, check_obs_dim


def test_defaults_are_the_papers() -> None:
    cfg = ResidualSACConfig()
    assert (cfg.hidden, cfg.actor_layers, cfg.critic_layers, cfg.num_qs) == (256, 3, 3, 2)
    assert (cfg.gamma, cfg.tau, cfg.grad_clip, cfg.batch_size) == (0.99, 0.005, 1.0, 256)
    assert (cfg.critic_actor_ratio, cfg.otf_samples, cfg.init_temperature, cfg.xi_final) == (2, 1, 1.0, 0.5)
    assert cfg.warmstart == "calql" and cfg.action_dim == 7 and cfg.reward_bias == 0.0
    assert cfg.resolved_target_entropy == -3.5
    assert ResidualSACConfig(target_entropy=-7.0).resolved_target_entropy == -7.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden", 0),
        ("num_qs", 1.5),
        ("otf_samples", 0),
        ("batch_size", True),
        ("gamma", 1.0),
        ("tau", 0.0),
        ("actor_lr", -1e-3),
        ("xi_final", 1.5),
        ("xi_initial", -0.1),
        ("xi_warmup_steps", -1),
        ("warmstart", "awac"),
        ("activation", "sigmoid"),
        ("iql_expectile", 1.0),
        ("cql_alpha", -1.0),
        ("target_entropy", "auto"),
        ("backup_entropy", 1),
        ("grad_clip", float("nan")),
        ("action_high", -2.0),
        ("critic_action", "delta"),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ResidualSACConfig(**{field: value})


def test_from_dict_rejects_unknown_keys_by_name() -> None:
    with pytest.raises(ValueError, match="hiden"):
        ResidualSACConfig.from_dict({"hiden": 128})


def test_dict_round_trip_through_json() -> None:
    cfg = ResidualSACConfig(hidden=64, otf_samples=4, warmstart="iql", target_entropy=-2.0)
    again = ResidualSACConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert hash(again) == hash(cfg)  # static argument of jit: must stay hashable


def test_residual_axes_are_sorted_hashable_and_set_the_target_entropy() -> None:
    cfg = ResidualSACConfig.from_dict({"residual_axes": [5, 0, 1]})  # a list, as YAML gives it
    assert cfg.residual_axes == (0, 1, 5) and cfg.residual_dims == 3
    assert cfg.resolved_target_entropy == -1.5  # -residual_dims / 2: masked axes carry no entropy
    assert ResidualSACConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert hash(cfg) == hash(ResidualSACConfig(residual_axes=(0, 1, 5)))
    assert ResidualSACConfig().residual_dims == 7


@pytest.mark.parametrize("axes", [[], [7], [-1], [0, 0], [0.5], [True], 3])
def test_invalid_residual_axes_are_named(axes: object) -> None:
    with pytest.raises(ValueError, match="residual_axes"):
        ResidualSACConfig(residual_axes=axes)


def test_check_obs_dim() -> None:
    assert check_obs_dim(5) == 5
    for bad in (0, -1, 2.0, "3", True):
        with pytest.raises(ValueError, match="obs_dim"):
            check_obs_dim(bad)
