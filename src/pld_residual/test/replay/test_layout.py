"""Memory layout: our bytes per transition against the naive (obs, next_obs) float32 layout; spec parsing."""

from __future__ import annotations

import numpy as np
import pytest

from pld_residual.replay import (
    FieldSpec,
    ObsSpec,
    ReplayBuffer,
    bytes_per_slot,
    memory_report,
    naive_bytes_per_transition,
    pld_obs_spec,
)


def test_compact_spec_figures_hand_computed() -> None:
    spec = pld_obs_spec()  # features 128 + proprio 15 + base_action 7, all float32
    # one slot: 150 * 4 obs + 7 * 4 action + 4 reward + 1 terminated + 4 mc_return + 1 valid flag
    assert bytes_per_slot(spec) == 600 + 28 + 4 + 1 + 4 + 1 == 638
    # naive: (150 + 150) * 4 + (7 + 3) * 4
    assert naive_bytes_per_transition(spec) == 1240
    report = memory_report(spec, episode_length=200)
    assert report.ours_per_transition == pytest.approx(638 * 201 / 200)
    assert report.ours_per_transition < report.naive_per_transition
    print(f"\ncompact (features 128 + proprio 15 + base_action 7): {report}")


def test_image_spec_figures_hand_computed() -> None:
    spec = pld_obs_spec(image_shape=(2, 64, 64, 3))
    images = 2 * 64 * 64 * 3  # 24576 uint8
    assert bytes_per_slot(spec) == images + 638
    assert naive_bytes_per_transition(spec) == 4 * (2 * (images + 150) + 10)
    report = memory_report(spec, episode_length=200)
    assert report.ours_per_transition < report.naive_per_transition
    assert report.ratio > 7
    print(f"\nwith 2x64x64x3 uint8 images: {report}")


def test_buffer_nbytes_match_the_layout() -> None:
    spec = pld_obs_spec(image_shape=(2, 64, 64, 3))
    buffer = ReplayBuffer(spec, 100)
    assert buffer.nbytes == 100 * bytes_per_slot(spec)
    assert buffer.bytes_per_transition() == bytes_per_slot(spec)
    assert buffer.bytes_per_transition(episode_length=4) == pytest.approx(bytes_per_slot(spec) * 5 / 4)
    assert buffer.memory_report().naive_per_transition == naive_bytes_per_transition(spec)


def test_spec_dict_round_trip_and_errors() -> None:
    spec = ObsSpec.from_dict({"features": ((128,), "float32"), "images": ([2, 8, 8, 3], np.uint8)})
    assert spec["images"] == FieldSpec((2, 8, 8, 3), "uint8")
    assert ObsSpec.from_dict(spec.to_dict()) == spec
    assert spec.names == ("features", "images")
    with pytest.raises(ValueError, match="duplicate"):
        ObsSpec((("a", FieldSpec((1,), "float32")), ("a", FieldSpec((1,), "float32"))))
    with pytest.raises(ValueError, match="positive"):
        FieldSpec((0,), "float32")
    with pytest.raises(ValueError, match="numeric"):
        FieldSpec((1,), "U8")
