"""Period statistics of a fixed-rate loop: is the 20 Hz actor really running at 20 Hz? Pure.

Jitter is reported as the 99th percentile of |period - nominal period|: one number that says how late
(or early) a command can be, where a standard deviation would hide rare long stalls.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class LoopTimer:
    """Keeps the last `window` periods between `tick` calls (times in integer nanoseconds)."""

    def __init__(self, nominal_period_s: float, window: int = 400) -> None:
        if nominal_period_s <= 0 or window < 1:
            raise ValueError("nominal_period_s and window must be positive")
        self.nominal_period_s = nominal_period_s
        self.ticks = 0
        self._last_ns: int | None = None
        self._periods_s: deque[float] = deque(maxlen=window)

    def tick(self, now_ns: int) -> None:
        if self._last_ns is not None:
            self._periods_s.append((now_ns - self._last_ns) * 1e-9)
        self._last_ns = now_ns
        self.ticks += 1

    def stats(self) -> dict[str, float | int]:
        """Mean / std / max period and p99 jitter over the window, in milliseconds."""
        out: dict[str, float | int] = {"ticks": self.ticks, "nominal_period_ms": self.nominal_period_s * 1e3}
        if not self._periods_s:
            return out
        periods = np.asarray(self._periods_s)
        deviation = np.abs(periods - self.nominal_period_s)
        out.update(
            window=len(periods),
            period_mean_ms=float(periods.mean() * 1e3),
            period_std_ms=float(periods.std() * 1e3),
            period_max_ms=float(periods.max() * 1e3),
            jitter_p99_ms=float(np.percentile(deviation, 99) * 1e3),
        )
        return out
