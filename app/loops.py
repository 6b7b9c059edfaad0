"""`ClaimLoop`: claim due rows from the database and handle each with bounded concurrency.

The job poller and the webhook dispatcher are both this loop. A subclass says how to claim (with a
lease), how to handle one item, and when the next item falls due; the loop keeps up to `concurrency`
items in hand, sleeps until something is due or `wake()` is called, and on stop drains for a bounded
time (unfinished items keep their lease, which lapses, and another worker resumes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Generic, TypeVar

from app.db.availability import is_unavailable
from app.db.base import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")


class ClaimLoop(ABC, Generic[T]):
    def __init__(self, *, name: str, concurrency: int, batch_size: int, idle_max_s: float) -> None:
        self.name = name
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._idle_max_s = idle_max_s
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        #: The heartbeat /readyz reads: set on every turn of the loop, busy or idle.
        self.last_tick_at: datetime | None = None

    @property
    def idle_max_s(self) -> float:
        """The longest the loop waits between turns when idle (readiness derives staleness from it)."""
        return self._idle_max_s

    @abstractmethod
    async def claim(self, limit: int) -> list[T]:
        """Lease up to `limit` due items to this worker."""

    @abstractmethod
    async def handle(self, item: T) -> None:
        """Handle one claimed item. Exceptions are logged; the item's lease then lapses."""

    @abstractmethod
    async def next_due_at(self) -> datetime | None:
        """When the next not-yet-due item becomes due, for the idle wait."""

    def wake(self) -> None:
        """A hint that work arrived; the database stays the source of truth."""
        self._wake.set()

    async def run_once(self) -> int:
        """Claim what is due, handle all of it, return how many items were handled. For tests and tools."""
        self.last_tick_at = utcnow()
        items = await self.claim(self._batch_size)
        if items:
            await asyncio.gather(*(self._guarded(item) for item in items))
        return len(items)

    async def run(self, stop: asyncio.Event, drain_grace_s: float = 10.0) -> None:
        log.info("%s started", self.name)
        try:
            while not stop.is_set():
                self.last_tick_at = utcnow()
                # Cleared before claiming, not before idling: a wake-up (new work, or an item in hand
                # finishing) that comes while this turn claims or asks `next_due_at` must not be lost.
                self._wake.clear()
                free = self._concurrency - len(self._in_flight)
                items: list[T] = []
                if free > 0:
                    try:
                        items = await self.claim(min(free, self._batch_size))
                    except Exception as exc:
                        if not is_unavailable(exc):
                            log.exception("%s: claiming failed; retrying", self.name)
                        else:  # an outage: one line per turn, not a traceback
                            log.warning("%s: the database is unavailable (%s); retrying", self.name, exc)
                for item in items:
                    task = asyncio.create_task(self._guarded(item))
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                if not items:
                    await self._idle(stop)
        finally:
            await self._drain(drain_grace_s)
            log.info("%s stopped", self.name)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """An item in hand is done: capacity (or an upstream or endpoint slot) is free again."""
        self._in_flight.discard(task)
        self._wake.set()

    async def _guarded(self, item: T) -> None:
        try:
            await self.handle(item)
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("%s: unexpected error", self.name)
            else:  # its lease lapses and the item is taken up again once the database is back
                log.warning("%s: the database became unavailable (%s)", self.name, exc)

    async def _idle(self, stop: asyncio.Event) -> None:
        timeout = self._idle_max_s
        with contextlib.suppress(Exception):
            due = await self.next_due_at()
            if due is not None:
                timeout = min(timeout, max(0.05, (due - utcnow()).total_seconds()))
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(stop.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _drain(self, grace_s: float) -> None:
        if not self._in_flight:
            return
        _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
