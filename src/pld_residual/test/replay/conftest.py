"""Shared helpers for the replay tests: a tiny spec whose observations say which episode and step they are."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pld_residual.replay import FieldSpec, ObsSpec

ObsFactory = Callable[..., dict[str, np.ndarray]]


@pytest.fixture
def tiny_spec() -> ObsSpec:
    """`tag` float32 [3] = (episode, step, source) and a uint8 `pixel` [2] = (episode % 256, step % 256)."""
    return ObsSpec((("tag", FieldSpec((3,), "float32")), ("pixel", FieldSpec((2,), "uint8"))))


@pytest.fixture
def make_obs() -> ObsFactory:
    """`make_obs(episode, step, source=0)`: an observation of `tiny_spec` that encodes where it came from."""

    def factory(episode: int, step: int, source: int = 0) -> dict[str, np.ndarray]:
        return {
            "tag": np.array([episode, step, source], np.float32),
            "pixel": np.array([episode % 256, step % 256], np.uint8),
        }

    return factory
