"""Domain randomisation: off by default, seeded, applied to the scene."""

from __future__ import annotations

import numpy as np
import pytest

import pld_sim
from pld_sim.randomization import DomainRandomization, Variation


def test_disabled_by_default_gives_the_nominal_scene() -> None:
    assert DomainRandomization().sample(np.random.default_rng(0)) == Variation()


def test_sampling_is_seeded() -> None:
    dr = DomainRandomization(enabled=True)
    assert dr.sample(np.random.default_rng(1)) == dr.sample(np.random.default_rng(1))
    assert dr.sample(np.random.default_rng(1)) != dr.sample(np.random.default_rng(2))


def test_bad_ranges_and_keys_are_rejected() -> None:
    with pytest.raises(ValueError):
        DomainRandomization(light_intensity=2.0)
    with pytest.raises(ValueError, match="unknown"):
        DomainRandomization.from_dict({"fog": 0.5})


def test_randomised_env_changes_the_picture_but_stays_reproducible() -> None:
    env = pld_sim.make("pick_cube", randomization={"enabled": True})
    first, _ = env.reset(seed=4)
    again, _ = env.reset(seed=4)
    other, _ = env.reset(seed=5)
    np.testing.assert_array_equal(first["images"]["side"], again["images"]["side"])
    assert not np.array_equal(first["images"]["side"], other["images"]["side"])
    nominal, _ = pld_sim.make("pick_cube").reset(seed=4)
    assert not np.array_equal(first["images"]["side"], nominal["images"]["side"])
    assert first["privileged"][7] != nominal["privileged"][7]  # cube size varied
