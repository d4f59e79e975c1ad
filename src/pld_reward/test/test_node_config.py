"""RewardNodeConfig and LabelNodeConfig: defaults, the threshold encoding, validation, dict round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from pld_reward.node_config import CALIBRATED, LabelNodeConfig, RewardNodeConfig


def test_reward_defaults_and_round_trip() -> None:
    cfg = RewardNodeConfig(checkpoint="runs/reward/pick_cube/classifier")
    assert (cfg.threshold, cfg.stage, cfg.debounce_k, cfg.debounce_n) == (CALIBRATED, 0, 1, 1)
    assert cfg.fixed_threshold is None
    assert RewardNodeConfig.from_dict(cfg.to_dict()) == cfg
    other = RewardNodeConfig.from_dict(
        {"checkpoint": "c", "threshold": 0.7, "stage": 2, "debounce_k": 2, "debounce_n": 3}
    )
    assert other.fixed_threshold == 0.7 and RewardNodeConfig.from_dict(other.to_dict()) == other


@pytest.mark.parametrize(
    ("given", "stored", "fixed"), [(None, -1.0, None), (-0.5, -1.0, None), (0, 0.0, 0.0), (1.1, 1.1, 1.1)]
)
def test_threshold_encoding(given, stored: float, fixed) -> None:
    cfg = RewardNodeConfig(checkpoint="c", threshold=given)
    assert cfg.threshold == stored and isinstance(cfg.threshold, float)
    assert cfg.fixed_threshold == fixed


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({}, "checkpoint: required"),
        ({"checkpoint": ""}, "checkpoint: required"),
        ({"checkpoint": "  "}, "checkpoint: required"),
        ({"checkpoint": "c", "threshold": float("nan")}, "threshold"),
        ({"checkpoint": "c", "threshold": "high"}, "threshold"),
        ({"checkpoint": "c", "threshold": True}, "threshold"),
        ({"checkpoint": "c", "stage": -1}, "stage"),
        ({"checkpoint": "c", "stage": 256}, "stage"),
        ({"checkpoint": "c", "stage": 1.0}, "stage"),
        ({"checkpoint": "c", "debounce_k": 0}, "debounce_k"),
        ({"checkpoint": "c", "debounce_k": 3, "debounce_n": 2}, "debounce_k"),
        ({"checkpoint": "c", "debounce_n": True}, "debounce_n"),
        ({"checkpoint": "c", "debounce": 2}, "unknown option"),
    ],
)
def test_reward_invalid_values_name_the_field(values: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RewardNodeConfig.from_dict(values)


def test_label_defaults_round_trip_and_frame_format() -> None:
    cfg = LabelNodeConfig()
    assert cfg.frames_dir == Path("runs/reward/pick_cube/frames/human")
    assert LabelNodeConfig.from_dict(cfg.to_dict()) == cfg
    custom = LabelNodeConfig(
        task="peg_insertion", out_dir="/tmp/x", cameras=("top",), image_size=64, input_size=16
    )
    assert custom.cameras == ["top"] and custom.frames_dir == Path("/tmp/x")
    ccfg = custom.classifier_config()
    assert (ccfg.tasks, ccfg.cameras, ccfg.image_size, ccfg.input_size) == (
        ("peg_insertion",),
        ("top",),
        64,
        16,
    )


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"task": ""}, "task"),
        ({"task": "a/b"}, "task"),
        ({"source": ""}, "source"),
        ({"stage": -1}, "stage"),
        ({"keyboard": "yes"}, "keyboard"),
        ({"max_frames": 0}, "max_frames"),
        ({"image_size": 100, "input_size": 64}, "multiple of input_size"),
        ({"cameras": []}, "cameras"),
        ({"cameras": ["a", "a"]}, "cameras"),
        ({"camera": ["a"]}, "unknown option"),
    ],
)
def test_label_invalid_values(values: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LabelNodeConfig.from_dict(values)
