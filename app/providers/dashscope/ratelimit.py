"""One rate limiter per upstream account: task queries (get/cancel/list) and creates per model family.

Calls are spaced evenly rather than in bursts, because the service counts requests per second and a
burst at a window edge would trip it; the spacing keeps a 10 % margin (a 5 RPS budget admits one call
every 220 ms), since requests do not arrive upstream exactly as evenly as they leave. A 429 pauses the
bucket for its `Retry-After`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from aiolimiter import AsyncLimiter

QUERY = "query"
#: Fraction of the nominal rate actually used.
SAFETY = 0.9


class UpstreamLimiter:
    def __init__(self, query_qps: float, submit_rps: Mapping[str, float]) -> None:
        self._limiters: dict[str, AsyncLimiter] = {QUERY: self._spaced(query_qps)}
        for group, rps in submit_rps.items():
            self._limiters[f"submit:{group}"] = self._spaced(rps)
        self._paused_until: dict[str, float] = {}

    @staticmethod
    def _spaced(rate: float) -> AsyncLimiter:
        return AsyncLimiter(1, 1.0 / (rate * SAFETY))

    def _limiter(self, key: str) -> AsyncLimiter:
        if key not in self._limiters:  # an unknown family gets the most conservative budget
            self._limiters[key] = self._spaced(1.0)
        return self._limiters[key]

    async def _acquire(self, key: str) -> None:
        # A pause can be extended while we sleep (another 429), hence the loop.
        while (delay := self._paused_until.get(key, 0.0) - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)
        await self._limiter(key).acquire()

    async def query(self) -> None:
        await self._acquire(QUERY)

    async def submit(self, group: str) -> None:
        await self._acquire(f"submit:{group}")

    def pause(self, key: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)

    def pause_submit(self, group: str, seconds: float) -> None:
        self.pause(f"submit:{group}", seconds)

    def pause_query(self, seconds: float) -> None:
        self.pause(QUERY, seconds)
