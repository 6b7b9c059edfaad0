"""SQL for `Idempotency-Key` reservations (the `idempotency_keys` table). Never commits.

A key is reserved by inserting its row (UNIQUE per tenant and key) in a transaction of its own, before the
request is validated; the job's insert links the row to the job in the job's transaction. A failed request
deletes its reservation, so the key is not consumed. See `JobService.create` for the whole flow.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import rowcount
from app.jobs.models import IdempotencyKey

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
