"""`ChangeFeed`: tells waiters in this process, at once, that a job has a new event.

Event streams and `Prefer: wait` block on it; listeners (the webhook dispatcher) are woken too. Another
process's changes are not seen here: waiters also re-read the database every CHANGE_POLL_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable


class ChangeFeed:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Called (with no argument) after every committed change."""
        self._listeners.append(listener)

    def notify(self, *job_ids: str) -> None:
        """After a commit that added events for `job_ids` (`transitions.Changed.jobs`); nothing if none."""
        if not job_ids:
            return
        for job_id in job_ids:
            for event in self._waiters.get(job_id, ()):
                event.set()
        for listener in self._listeners:
            listener()

    @contextlib.asynccontextmanager
    async def watch(self, job_id: str) -> AsyncIterator[asyncio.Event]:
        """An Event set whenever `job_id` changes (clear it before each read of the database)."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]


async def wait_changed(event: asyncio.Event, within_s: float) -> bool:
    """True when `event` was set within `within_s` seconds."""
    try:
        await asyncio.wait_for(event.wait(), within_s)
    except TimeoutError:
        return False
    return True
