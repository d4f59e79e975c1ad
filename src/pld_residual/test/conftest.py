"""Fixtures shared by pld_residual's tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def tiny_vla() -> dict[str, Any]:
    """SmallVLAConfig fields of a VLA small enough to build, train and run in a test (random weights)."""
    return dict(
        vision_size=32, vision_channels=(8, 16), vision_dim=32, trunk_hidden=64, feature_dim=32,
        flow_hidden=64, ar_hidden=64, ar_embed=32, horizon=4,
    )  # fmt: skip
