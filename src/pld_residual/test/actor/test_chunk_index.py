"""Which chunk row applies now: step k from stamp + k * period; past the end or far in the future -> stale."""

from __future__ import annotations

import pytest

from pld_residual.actor.chunk_index import chunk_row

MS = 1_000_000
PERIOD = 50 * MS
STAMP = 1_000 * MS


@pytest.mark.parametrize(
    ("now_ms", "row"),
    [
        (1000, 0),
        (1049.999999, 0),
        (1050, 1),
        (1150, 3),  # 0.15 / 0.05 in float seconds is 2.999...: integer ns gets row 3
        (1199, 3),
        (1200, None),  # row 4 of a 4-row chunk: past the end
        (5000, None),
    ],
)
def test_row_from_elapsed_time(now_ms: float, row: int | None) -> None:
    assert chunk_row(STAMP, round(now_ms * MS), PERIOD, horizon=4) == row


def test_stamps_in_the_future_give_row_zero_within_the_tolerance_only() -> None:
    assert chunk_row(STAMP, STAMP - 5 * MS, PERIOD, 4, tolerance_ns=10 * MS) == 0
    assert chunk_row(STAMP, STAMP - 11 * MS, PERIOD, 4, tolerance_ns=10 * MS) is None
    assert chunk_row(STAMP, STAMP - 1, PERIOD, 4) is None  # no tolerance


def test_empty_chunks_and_bad_arguments() -> None:
    assert chunk_row(STAMP, STAMP, PERIOD, horizon=0) is None
    with pytest.raises(ValueError, match="period_ns"):
        chunk_row(STAMP, STAMP, 0, 4)
    with pytest.raises(ValueError, match="horizon"):
        chunk_row(STAMP, STAMP, PERIOD, -1)
