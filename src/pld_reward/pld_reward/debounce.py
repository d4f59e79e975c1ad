"""k-of-n debouncing of per-frame success decisions (pure): success once k of the last n frames agree.

One bright frame should not end an episode; requiring a few agreeing frames trades a little latency
(at most n - 1 frames) for fewer false positives. k = n = 1 passes decisions through unchanged.
"""

from __future__ import annotations

from collections import deque


class Debouncer:
    """Feeds per-frame decisions; `update` answers whether k of the last n were successes."""

    def __init__(self, k: int = 1, n: int = 1) -> None:
        if isinstance(k, bool) or isinstance(n, bool) or not (isinstance(k, int) and isinstance(n, int)):
            raise ValueError(f"k and n must be integers, got k={k!r}, n={n!r}")
        if not 1 <= k <= n:
            raise ValueError(f"debouncing needs 1 <= k <= n, got k={k}, n={n}")
        self.k, self.n = k, n
        self._window: deque[bool] = deque(maxlen=n)

    def update(self, success: bool) -> bool:
        self._window.append(bool(success))
        return sum(self._window) >= self.k

    def reset(self) -> None:
        """Forget the window (a new episode or stage starts)."""
        self._window.clear()
