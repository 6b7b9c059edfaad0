"""`RetentionLoop`: STORAGE_RETENTION_S — stored videos of finished jobs older than this are removed; the
jobs stay, with `expired_at` (`result.expired_at`; `/content` and `/thumbnail` answer 410 `video_expired`).

A `ClaimLoop` over the jobs table, beside the poller and the dispatcher (the `LoopRunner` runs it when
the setting is on): it leases succeeded jobs finished before `now - STORAGE_RETENTION_S` whose video is
still shown (`repository.claim_expirable`: a lease, so replicas never work on one job together), and for
each one takes the stored object's lock and looks at every job that shows the same object (result reuse
points several jobs at one key):
- all of them are past retention: they are all marked expired in that transaction, then the video and
  its renditions are removed from the store (after the commit: a reuse that looks afterwards no longer
  finds them, and `reuse.py` re-checks under the same lock, so no new job is handed an object being
  removed);
- one of them is younger: nothing is removed yet; the claimed job keeps its lease until that job is past
  retention too, so it is not claimed again on every turn meanwhile (if that job is deleted first, the
  video goes when this lease lapses: late, never early).
A store that fails to delete leaves the object behind (logged): the jobs are expired either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.jobs import repository
from app.jobs.models import Job
from app.loops import ClaimLoop
from app.storage.base import Storage, StorageError
from app.storage.renditions import rendition_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionConfig:
    """Built from Settings by app/wiring.py; no defaults here."""

    retention_s: float
    lease_s: float
    batch_size: int
    idle_max_s: float


class RetentionLoop(ClaimLoop[Job]):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        config: RetentionConfig,
        *,
        worker_id: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(
            name="storage_retention",
            concurrency=config.batch_size,
            batch_size=config.batch_size,
            idle_max_s=config.idle_max_s,
        )
        self._sessions = sessions
        self._storage = storage
        self._config = config
        self._worker_id = worker_id
        self._clock = clock
        #: Stored objects removed by this process (for logs and tests).
        self.removed = 0

    @property
    def _retention(self) -> timedelta:
        return timedelta(seconds=self._config.retention_s)

    async def claim(self, limit: int) -> list[Job]:
        now = self._clock()
        async with self._sessions.begin() as session:
            return await repository.claim_expirable(
                session,
                limit,
                self._worker_id,
                now,
                now - self._retention,
                now + timedelta(seconds=self._config.lease_s),
            )

    async def handle(self, item: Job) -> None:
        key = item.storage_key
        assert key is not None
        now = self._clock()
        async with self._sessions.begin() as session:
            await repository.lock_stored_object(session, key)
            holders = await repository.object_holders(session, key)
            if not holders:
                return  # another turn expired them (a job of the same object, claimed beside this one)
            youngest = max(h.finished_at or now for h in holders)
            if youngest >= now - self._retention:
                # Shared with a job still within retention: back when that one is past it too.
                await repository.extend_lease(session, item, self._worker_id, youngest + self._retention)
                return
            expired = await repository.mark_expired(session, key, now)
        log.info("stored video %s expired (jobs %s); removing it", key, ", ".join(expired))
        for name in (key, *rendition_keys(key)):
            try:
                await self._storage.delete(name)
            except (StorageError, OSError) as exc:
                log.warning("cannot remove the expired object %s (left behind): %s", name, exc)
        self.removed += 1

    async def next_due_at(self) -> datetime | None:
        return None  # retention is coarse: the loop looks again after `idle_max_s`
