"""ResidualActorConfig: defaults, dict round trip, and validation messages that name the field."""

from __future__ import annotations

import pytest

from pld_residual.actor.config import ResidualActorConfig


def test_defaults_match_the_sim_limits_and_the_paper() -> None:
    cfg = ResidualActorConfig()
    assert (cfg.rate_hz, cfg.watchdog_s, cfg.xi) == (20.0, 0.2, 0.5)
    assert (cfg.max_delta_translation_m, cfg.max_delta_rotation_rad) == (0.02, 0.1)
    assert cfg.period_ns == 50_000_000 and cfg.watchdog_ns == 200_000_000
    assert cfg.workspace_low == (0.2, -0.5, 0.0) and cfg.workspace_high == (0.8, 0.5, 0.7)
    assert cfg.agent_config().hidden == 256


def test_round_trip_json_agent_options_and_integer_floats() -> None:
    cfg = ResidualActorConfig.from_dict(
        {"rate_hz": 10, "watchdog_s": 1, "agent_options": '{"hidden": 16}', "workspace_mode": "reject"}
    )
    assert cfg.rate_hz == 10.0 and isinstance(cfg.rate_hz, float) and isinstance(cfg.watchdog_s, float)
    assert cfg.agent_options == {"hidden": 16} and cfg.agent_config().hidden == 16
    assert ResidualActorConfig.from_dict(cfg.to_dict()) == cfg
    assert ResidualActorConfig.from_dict({"agent_options": ""}).agent_options == {}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"rate_hz": 0.0}, "rate_hz"),
        ({"rate_hz": "fast"}, "rate_hz"),
        ({"rate_hz": float("nan")}, "rate_hz"),
        ({"watchdog_s": 0.01}, "watchdog_s"),  # shorter than one 50 ms period
        ({"max_delta_translation_m": -0.02}, "max_delta_translation_m"),
        ({"max_delta_gripper": 0.0}, "max_delta_gripper"),
        ({"workspace_z_min": 0.8}, "workspace_z_min"),
        ({"workspace_mode": "bounce"}, "workspace_mode"),
        ({"features_source": "images"}, "features_source"),
        ({"xi": 1.5}, "xi"),
        ({"initial_gripper": 2.0}, "initial_gripper"),
        ({"residual_enabled": 1}, "residual_enabled"),
        ({"seed": -1}, "seed"),
        ({"checkpoint": "/no/such/policy"}, "checkpoint"),
        ({"agent_options": {"hidden_size": 16}}, "agent_options"),
        ({"agent_options": "{oops"}, "agent_options"),
    ],
)
def test_invalid_values_name_the_field(values: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"ResidualActorConfig\.{field}"):
        ResidualActorConfig.from_dict(values)


def test_unknown_options_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        ResidualActorConfig.from_dict({"rate": 20})
