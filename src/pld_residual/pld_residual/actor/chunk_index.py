"""Which row of the current action chunk applies now. Pure integer-nanosecond arithmetic.

The VLA answers asynchronously, so the actor never waits for a chunk: it indexes the newest one by the
time elapsed since the chunk's stamp (the stamp of the observation it answers). Row k applies from
`stamp + k * period` until the next row starts (ActionChunk.msg). Integer nanoseconds keep the
boundaries exact: with float seconds, 0.15 / 0.05 is 2.999..., which would pick the wrong row.
"""

from __future__ import annotations


def chunk_row(stamp_ns: int, now_ns: int, period_ns: int, horizon: int, tolerance_ns: int = 0) -> int | None:
    """The row index of the chunk that applies at `now_ns`, or None when the chunk is stale.

    Stale means: past its last row (`now >= stamp + horizon * period`), or stamped more than
    `tolerance_ns` in the future (a clock mismatch, e.g. sim-time stamps read on a wall-clock node).
    A stamp slightly in the future (within the tolerance, from clock jitter between hosts) gives row 0.
    """
    if period_ns <= 0:
        raise ValueError(f"period_ns must be positive, got {period_ns}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    elapsed = now_ns - stamp_ns
    if elapsed < 0:
        return 0 if -elapsed <= tolerance_ns and horizon > 0 else None
    row = elapsed // period_ns
    return row if row < horizon else None
