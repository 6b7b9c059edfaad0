"""`ClaimLoop` on its own: an item in hand that finishes at any moment frees its capacity at once.

A slot that frees while the loop is between its claim and its idle wait (asking `next_due_at`) once
went unnoticed until `idle_max_s`: a capped endpoint's next delivery waited minutes for nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime

from app.loops import ClaimLoop
from tests.helpers import wait_for


class CappedLoop(ClaimLoop[int]):
    """Items 0..n-1, at most one in hand (a cap like an endpoint's); item 0 finishes while the loop asks
    `next_due_at`, which reports nothing more due (the rest are due already, but capped)."""

    def __init__(self, items: int) -> None:
        super().__init__(name="test loop", concurrency=4, batch_size=4, idle_max_s=60.0)
        self.waiting = list(range(items))
        self.busy = 0
        self.done: list[int] = []
        self.release_first = asyncio.Event()

    async def claim(self, limit: int) -> list[int]:
        if self.busy or not self.waiting:
            return []
        self.busy += 1
        return [self.waiting.pop(0)]

    async def handle(self, item: int) -> None:
        if item == 0:
            await self.release_first.wait()
        self.done.append(item)
        self.busy -= 1

    async def next_due_at(self) -> datetime | None:
        self.release_first.set()  # the item in hand finishes while the loop is on its way to idle
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return None


async def test_a_slot_freed_on_the_way_to_idle_is_used_at_once() -> None:
    loop = CappedLoop(items=3)
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    try:

        async def all_done() -> bool:
            return len(loop.done) == 3

        await wait_for(all_done, within=10, what="every item, well before idle_max_s (60 s)")
    finally:
        stop.set()
        await running
