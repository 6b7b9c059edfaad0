"""`Idempotency-Key`: `IdempotencyKeys.hold` around a create, and the SQL of its reservations (the
`idempotency_keys` table; the functions never commit).

A key is reserved by inserting its row (UNIQUE per tenant and key) in a transaction of its own, before the
request is validated, so a concurrent duplicate sees it at once: no job yet → 409, a job and the same
fingerprint (sha256 of the canonical validated body) → replay, another fingerprint → 422. The job's
insert links the row to the job in the job's transaction. A failed request deletes its reservation, so
the key is not consumed. Expired rows, and reservations still without a job after `ABANDONED_AFTER_S`
(their request died), are deleted with a conditional DELETE and the key taken over; each keyed create
sweeps a few expired rows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import rowcount, utcnow
from app.errors import Conflict, FieldError, Gone
from app.jobs import repository
from app.jobs.fingerprint import request_fingerprint
from app.jobs.models import IdempotencyKey, Job
from app.jobs.schemas import JobCreate

log = logging.getLogger(__name__)

#: A reservation still without a job after this long belongs to a request that died: it may be taken over.
ABANDONED_AFTER_S = 60.0


def tenant_of(owner: str | None) -> str:
    """The scope of a key: the job owner, or '' when there is none (NULLs never collide in UNIQUE)."""
    return owner or ""


async def insert(session: AsyncSession, row: IdempotencyKey) -> None:
    """Raises IntegrityError when the tenant already holds the key."""
    session.add(row)
    await session.flush()


async def find(session: AsyncSession, tenant: str, key: str) -> IdempotencyKey | None:
    row: IdempotencyKey | None = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.tenant == tenant, IdempotencyKey.key == key)
    )
    return row


async def delete_if_free(
    session: AsyncSession, row_id: str, now: datetime, abandoned_before: datetime
) -> bool:
    """Delete a row that no longer holds its key: expired, or a reservation abandoned by a dead request.
    The condition is re-checked in the DELETE, so two requests cannot both take the key over."""
    result = await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.id == row_id,
            or_(
                IdempotencyKey.expires_at <= now,
                and_(IdempotencyKey.job_id.is_(None), IdempotencyKey.created_at <= abandoned_before),
            ),
        )
    )
    return rowcount(result) == 1


async def release(session: AsyncSession, row_id: str) -> None:
    """Give a reservation back (its request failed): the key is free again."""
    await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.id == row_id, IdempotencyKey.job_id.is_(None))
    )


async def link(session: AsyncSession, row_id: str, job_id: str) -> bool:
    """Point our reservation at the job (in the job's transaction). False if it is no longer ours."""
    result = await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == row_id, IdempotencyKey.job_id.is_(None))
        .values(job_id=job_id)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def sweep_expired(session: AsyncSession, now: datetime, limit: int = 100) -> None:
    """Delete some expired keys (each new keyed job sweeps a few, so the table stays small)."""
    expired = (
        select(IdempotencyKey.id)
        .where(IdempotencyKey.expires_at <= now)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.id.in_(expired))
        .execution_options(synchronize_session=False)
    )


def _in_progress() -> Conflict:
    return Conflict(
        "a request with this Idempotency-Key is still being processed; retry shortly",
        code="idempotency_key_in_progress",
        headers={"Retry-After": "1"},
    )


@dataclass(frozen=True)
class Held:
    """A create's hold on its `Idempotency-Key` (none: a create without a key)."""

    #: The job an earlier request with this key and body created: answer with it, create nothing.
    replay: Job | None = None
    reservation: IdempotencyKey | None = None

    @property
    def key(self) -> str | None:
        return self.reservation.key if self.reservation is not None else None

    async def link(self, session: AsyncSession, job: Job) -> None:
        """In the job's transaction: the key now names `job` (a 409 if the reservation was taken over
        meanwhile: this request took over a minute, and the other one wins)."""
        if self.reservation is None:
            return
        if not await link(session, self.reservation.id, job.id):
            raise _in_progress()
        await sweep_expired(session, utcnow())


class IdempotencyKeys:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl_s: float) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s

    @contextlib.asynccontextmanager
    async def hold(self, owner: str | None, key: str | None, body: JobCreate) -> AsyncIterator[Held]:
        """Reserve `key` of tenant `owner` for `body` around a create, or find the job it made already.
        If the create fails (an exception out of the block), the reservation is given back."""
        if key is None:
            yield Held()
            return
        reserved = await self._reserve(owner, key, request_fingerprint(body))
        if isinstance(reserved, Job):
            log.info("job %s replayed for its Idempotency-Key", reserved.id)
            yield Held(replay=reserved)
            return
        try:
            yield Held(reservation=reserved)
        except Exception:
            with contextlib.suppress(Exception):
                async with self._sessions.begin() as session:
                    await release(session, reserved.id)
            raise

    async def _reserve(self, owner: str | None, key: str, fingerprint: str) -> IdempotencyKey | Job:
        """Our reservation of `key`, or the job an identical earlier request created with it."""
        tenant = tenant_of(owner)
        for _ in range(5):
            now = utcnow()
            row = IdempotencyKey(
                tenant=tenant,
                key=key,
                fingerprint=fingerprint,
                created_at=now,
                expires_at=now + timedelta(seconds=self._ttl_s),
            )
            try:
                async with self._sessions.begin() as session:
                    await insert(session, row)
                return row
            except IntegrityError:
                pass  # the key is held: by whom, and for what?
            async with self._sessions.begin() as session:
                held = await find(session, tenant, key)
                if held is None:
                    continue  # given back meanwhile
                abandoned = now - timedelta(seconds=ABANDONED_AFTER_S)
                if await delete_if_free(session, held.id, now, abandoned):
                    continue  # expired, or its request died: take the key over
                if held.fingerprint != fingerprint:
                    raise FieldError(
                        "Idempotency-Key",
                        "this key was already used with a different request body; use a new key for a "
                        "new request",
                        code="idempotency_key_reused",
                    )
                if held.job_id is None:
                    break
                job = await repository.get(session, held.job_id)
                if job is not None and job.deleted_at is not None:
                    # The key stays used: a late retry of that request must not make (and bill) it again.
                    raise Gone(
                        "the job this Idempotency-Key created was deleted; use a new key for a new job",
                        code="job_deleted",
                    )
                if job is not None:
                    return job
        raise _in_progress()
