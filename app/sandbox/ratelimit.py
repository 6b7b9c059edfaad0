"""A sliding one-second window for the task APIs' 20 QPS (§3, §4) when limits are enforced.

[EMU] Per process: submit RPS is counted in the shared task table (store.py), but query/list/cancel
calls leave no trace there, so two sandbox processes each allow the full rate.
"""

from __future__ import annotations

from collections import deque


class WindowLimiter:
    def __init__(self, per_second: float) -> None:
        self._limit = per_second
        self._hits: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self._hits and self._hits[0] <= now - 1.0:
            self._hits.popleft()
        if len(self._hits) >= self._limit:
            return False
        self._hits.append(now)
        return True
