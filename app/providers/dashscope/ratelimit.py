"""One rate budget per upstream account: task queries (get/cancel/list) and creates per model family.

Calls are spaced evenly rather than in bursts, because the service counts requests per second and a
burst at a window edge would trip it. The spacing keeps a 20 % margin (a 5 RPS budget admits one call
every 250 ms), because requests do not arrive upstream as evenly as they leave: a call that opens a new
connection, or leaves a busy event loop late, lands closer to the next one. With rate r the service sees
r + 1 calls inside its one-second window only if one of them arrives more than 1/SAFETY − 1 = 250 ms
behind its slot. A 429 holds the budget for its `Retry-After`.

The budget is DashScope's, per account, so every process of a deployment must draw on the same one: the
reservations live in a `SlotStore` — the database (`app/db/budget.py`) in the gateway, so API and worker
replicas share it; `LocalSlots` keeps them in memory for a single process.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from typing import Protocol

QUERY = "query"
#: Fraction of the nominal rate actually used.
SAFETY = 0.8
#: A call leaving this much after its reserved moment re-spaces the budget from the moment it left.
LATE_S = 0.02
#: The most conservative budget, for a family the registry does not know.
UNKNOWN_FAMILY_RPS = 1.0


class SlotStore(Protocol):
    async def reserve(self, key: str, spacing: float) -> float:
        """Reserve the next call on `key`, `spacing` seconds after the previous one; return the epoch time
        at which the caller may make it."""
        ...

    async def hold_until(self, key: str, until: float) -> None:
        """Let no call on `key` start before the epoch time `until`."""
        ...


class LocalSlots:
    """A `SlotStore` in this process's memory (GCRA with no burst)."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    async def reserve(self, key: str, spacing: float) -> float:
        start = max(self._tat.get(key, 0.0), time.time())
        self._tat[key] = start + spacing
        return start

    async def hold_until(self, key: str, until: float) -> None:
        self._tat[key] = max(self._tat.get(key, 0.0), until)


async def _sleep_until(moment: float) -> None:
    if (delay := moment - time.time()) > 0:
        await asyncio.sleep(delay)


def account_scope(base_url: str, api_key: str) -> str:
    """A short, non-secret name for one upstream account (its budgets' key prefix)."""
    return hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()[:16]


class UpstreamLimiter:
    def __init__(
        self,
        query_qps: float,
        submit_rps: Mapping[str, float],
        *,
        store: SlotStore | None = None,
        scope: str = "default",
    ) -> None:
        self._spacing: dict[str, float] = {QUERY: self._spaced(query_qps)}
        for group, rps in submit_rps.items():
            self._spacing[f"submit:{group}"] = self._spaced(rps)
        self._store: SlotStore = store or LocalSlots()
        self._scope = scope
        #: When this process's last call on each budget left (or will leave).
        self._sent: dict[str, float] = {}

    @staticmethod
    def _spaced(rate: float) -> float:
        return 1.0 / (rate * SAFETY)

    async def _acquire(self, key: str) -> None:
        spacing = self._spacing.get(key) or self._spaced(UNKNOWN_FAMILY_RPS)
        scoped = f"{self._scope}:{key}"
        at = await self._store.reserve(scoped, spacing)
        await _sleep_until(at)
        # Spacing must hold between the calls as sent, not only as reserved: a call that leaves late (a
        # slow reservation, a busy event loop) would otherwise land right before the next one, which is
        # already reserved. So this process also spaces its own calls from when they actually leave …
        start = max(time.time(), self._sent.get(scoped, 0.0) + spacing)
        self._sent[scoped] = start
        await _sleep_until(start)
        # … and a late call pushes the shared budget back for the other processes.
        if time.time() - at > LATE_S:
            await self._store.hold_until(scoped, time.time() + spacing)

    async def query(self) -> None:
        await self._acquire(QUERY)

    async def submit(self, group: str) -> None:
        await self._acquire(f"submit:{group}")

    async def pause(self, key: str, seconds: float) -> None:
        await self._store.hold_until(f"{self._scope}:{key}", time.time() + seconds)

    async def pause_submit(self, group: str, seconds: float) -> None:
        await self.pause(f"submit:{group}", seconds)

    async def pause_query(self, seconds: float) -> None:
        await self.pause(QUERY, seconds)
