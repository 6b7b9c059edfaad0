"""Result reuse: an identical seeded request of a tenant (the same `cache_key`) gets the stored video of
one of its succeeded jobs, or follows an identical job still running instead of being submitted again.

Two steps, around the create transaction:
- `look`, outside any transaction: the newest succeeded jobs with the key that made their own video, and
  whether that video is still in storage (`storage.stat`, which may be a network call).
- `apply`, inside it: if no stored video was found, the key is locked (Postgres; SQLite's BEGIN IMMEDIATE
  serializes anyway) and an unfinished job with the key is looked for, locked: the new job follows it
  (`queued`, `source_job_id` set, due at its deadline; the original resolves it when it ends,
  `transitions.py`). Locked, the original cannot end before this transaction commits, and once it has
  ended it is not found, so the succeeded lookup is repeated here (its video was stored a moment ago).
  A stored video makes the new job a finished copy: `succeeded`, the same `storage_key` and `result` —
  checked again under the object's lock (a delete or the retention loop may have just removed it; then
  the job is generated anew).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.jobs import repository
from app.jobs.models import Job
from app.jobs.states import JobStatus
from app.storage.base import Storage, StorageError

log = logging.getLogger(__name__)

#: Tolerated clock difference between processes (a job another worker finished "just now").
_CLOCK_SKEW_S = 5.0


@dataclass(frozen=True)
class Lookup:
    """What `look` found for one request."""

    #: The request's cache key if it may be reused (None: it is generated anew, whatever exists).
    key: str | None = None
    #: A succeeded job of the tenant with the key whose video is still stored.
    source: Job | None = None
    #: Succeeded jobs with the key whose video is gone (or could not be checked): not to be used.
    rejected: list[str] = field(default_factory=list)
    looked_at: datetime = field(default_factory=utcnow)


class ResultReuse:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], storage: Storage, *, enabled: bool
    ) -> None:
        self._sessions = sessions
        self._storage = storage
        self._enabled = enabled

    async def look(self, owner: str | None, key: str | None, *, wanted: bool) -> Lookup:
        """`wanted`: the request allows reuse (`cache`); RESULT_CACHE=false turns it off for everyone."""
        if key is None or not wanted or not self._enabled:
            return Lookup()
        looked_at = utcnow()
        async with self._sessions() as session:
            candidates = await repository.reusable_results(session, owner, key)
        rejected: list[str] = []
        for candidate in candidates:
            assert candidate.storage_key is not None and candidate.result is not None
            try:
                stored = await self._storage.stat(candidate.storage_key)
            except StorageError as exc:
                log.warning("job %s: cannot check its stored video (%s); not reusing it", candidate.id, exc)
                stored = None
            if stored is not None and stored.size_bytes == candidate.result.get("bytes"):
                return Lookup(key, candidate, rejected, looked_at)
            rejected.append(candidate.id)
        return Lookup(key, None, rejected, looked_at)

    async def apply(self, session: AsyncSession, job: Job, lookup: Lookup, now: datetime) -> None:
        """Make the new `job` (not inserted yet) a follower or a copy, if the tenant has an identical one."""
        if lookup.key is None:
            return
        source = lookup.source
        if source is None:
            await repository.lock_cache_key(session, job.owner, lookup.key)
            original = await repository.running_original(session, job.owner, lookup.key)
            if original is not None:
                job.source_job_id = original.id
                job.next_attempt_at = job.deadline_at  # nothing to do before then but wait
                return
            found = await repository.reusable_results(
                session,
                job.owner,
                lookup.key,
                exclude=lookup.rejected,
                finished_since=lookup.looked_at - timedelta(seconds=_CLOCK_SKEW_S),
                limit=1,
            )
            source = found[0] if found else None
        if source is not None and await self._still_stored(session, source):
            _copy_result(job, source, now)

    @staticmethod
    async def _still_stored(session: AsyncSession, source: Job) -> bool:
        """Under the stored object's lock (held to commit): `source` still shows its video, so a delete or
        the retention loop cannot remove the object this new job is about to point at. Otherwise the job
        is generated anew."""
        assert source.storage_key is not None
        await repository.lock_stored_object(session, source.storage_key)
        return await repository.holds_object_now(session, source.id)


def _copy_result(job: Job, source: Job, now: datetime) -> None:
    """Make the new `job` a finished copy of `source`'s result: the same stored object, no upstream task."""
    job.status = JobStatus.SUCCEEDED
    job.source_job_id = source.id
    job.storage_key = source.storage_key
    job.result = dict(source.result or {})
    job.upstream_body = None  # never sent
    job.video_seconds = 0.0  # so it costs no quota either
    job.next_attempt_at = None
    job.finished_at = now
