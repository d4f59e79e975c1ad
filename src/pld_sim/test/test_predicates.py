"""Success predicates on constructed states (no simulator)."""

from __future__ import annotations

from pld_sim.predicates import cube_lifted_and_held


def test_cube_lifted_and_held() -> None:
    assert cube_lifted_and_held(0.06, 0.0, True, True)
    assert not cube_lifted_and_held(0.04, 0.0, True, True)  # not high enough
    assert not cube_lifted_and_held(0.10, 0.0, True, False)  # thrown, or held by one finger
    assert not cube_lifted_and_held(0.10, 0.0, False, False)
    assert cube_lifted_and_held(0.86, 0.80, True, True)  # relative to the table
