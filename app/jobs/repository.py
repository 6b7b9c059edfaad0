"""SQL for jobs: inserts, reads, lease-based claims and compare-and-set writes. Never commits.

Every write after a claim is `WHERE id = ? AND version = ?` and bumps `version`, so a worker whose lease
was taken over, or a job the API canceled meanwhile, simply stops being written by the stale party.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import rowcount, utcnow
from app.db.leases import lease, unleased
from app.jobs.models import Job, JobEvent, plausible_id
from app.jobs.outbox import Outbox
from app.jobs.states import JobStatus, check_transition

UPSTREAM_ACTIVE = (JobStatus.SUBMITTED.value, JobStatus.RUNNING.value)


async def insert(session: AsyncSession, job: Job) -> Job:
    session.add(job)
    await session.flush()
    return job


async def get(session: AsyncSession, job_id: str) -> Job | None:
    return await session.get(Job, job_id)


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on anything that is not a cursor this service issued."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    created, job_id = raw.split("|", 1)
    when = datetime.fromisoformat(created)
    if when.tzinfo is None or not job_id.startswith("job_") or not plausible_id(job_id):
        raise ValueError("not a cursor")
    return when, job_id


async def list_page(
    session: AsyncSession,
    *,
    owner: str | None,
    statuses: Sequence[str] | None,
    limit: int,
    cursor: tuple[datetime, str] | None,
) -> Page:
    """Newest first; the cursor is the last row of the previous page."""
    query = select(Job).where(Job.owner.is_(None) if owner is None else Job.owner == owner)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    if cursor is not None:
        created, job_id = cursor
        query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id)))
    rows = list(
        (await session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))).all()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(jobs=rows, next_cursor=encode_cursor(rows[-1]) if more and rows else None)


async def upstream_slots_in_use(session: AsyncSession, limit_group: str) -> int:
    """Tasks of this family that are (or may be) PENDING/RUNNING upstream: from the submit claim (which
    sets `submit_started_at`) until upstream reports a terminal state (`storing` holds no slot)."""
    query = select(func.count()).where(
        Job.limit_group == limit_group,
        or_(
            Job.status.in_(UPSTREAM_ACTIVE),
            and_(Job.status == JobStatus.QUEUED.value, Job.submit_started_at.is_not(None)),
        ),
    )
    return int((await session.scalar(query)) or 0)


async def limit_groups_with_queued(session: AsyncSession, now: datetime) -> list[str]:
    query = (
        select(Job.limit_group)
        .where(
            Job.status == JobStatus.QUEUED.value,
            Job.submit_started_at.is_(None),
            Job.next_attempt_at <= now,
        )
        .distinct()
        .order_by(Job.limit_group)  # a fixed lock order across replicas (no advisory-lock deadlock)
    )
    return list((await session.scalars(query)).all())


async def claim_for_submit(
    session: AsyncSession, limit_group: str, count: int, owner: str, now: datetime, lease_until: datetime
) -> list[Job]:
    """The oldest `count` due queued jobs of a family, FIFO, leased to `owner`.

    The submit attempt is recorded in the same statement (`submit_started_at`): from here on the job
    holds an upstream slot, so a concurrent claimer counting slots cannot over-commit the family.
    """
    if count <= 0:
        return []
    query = (
        select(Job.id)
        .where(
            Job.limit_group == limit_group,
            Job.status == JobStatus.QUEUED.value,
            Job.submit_started_at.is_(None),
            Job.next_attempt_at <= now,
            unleased(Job, now),
        )
        .order_by(Job.created_at, Job.id)
        .limit(count)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.scalars(query)).all())
    return await lease(
        session,
        Job,
        ids,
        owner,
        lease_until,
        updated_at=now,
        submit_started_at=now,
        submit_attempts=Job.submit_attempts + 1,
    )


async def claim_due(
    session: AsyncSession, count: int, owner: str, now: datetime, lease_until: datetime
) -> list[Job]:
    """Due jobs that need upstream polling, a copy, reconciliation, or a deadline check."""
    query = (
        select(Job.id)
        .where(
            Job.next_attempt_at <= now,
            unleased(Job, now),
            or_(
                Job.status.in_((*UPSTREAM_ACTIVE, JobStatus.STORING.value)),
                # queued: an ambiguous create to reconcile, or a job past its deadline
                and_(
                    Job.status == JobStatus.QUEUED.value,
                    or_(Job.submit_started_at.is_not(None), Job.deadline_at <= now),
                ),
            ),
        )
        .order_by(Job.next_attempt_at)
        .limit(count)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.scalars(query)).all())
    return await lease(session, Job, ids, owner, lease_until, updated_at=now)


async def cas_update(session: AsyncSession, job: Job, *, outbox: Outbox, **values: Any) -> bool:
    """Write `values` iff the row is still at `job.version`; on success `job` reflects the new row.

    A status change also appends its event and webhook deliveries (the outbox), in this transaction.
    """
    now = values.pop("updated_at", None) or utcnow()
    target = values.get("status")
    status_changes = target is not None and target != job.status
    if status_changes:
        check_transition(JobStatus(job.status), JobStatus(str(target)))
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.version == job.version)
        .values(**values, version=job.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False
    for key, value in values.items():
        setattr(job, key, value)
    job.version += 1
    job.updated_at = now
    if status_changes:
        await outbox.record(session, job)
    return True


async def extend_lease(session: AsyncSession, job: Job, owner: str, lease_until: datetime) -> bool:
    """Keep a long operation's lease alive without changing the job (no version bump)."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.version == job.version, Job.lease_owner == owner)
        .values(lease_expires_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def task_ids_in_use(session: AsyncSession, task_ids: Sequence[str]) -> set[str]:
    if not task_ids:
        return set()
    rows = await session.scalars(select(Job.task_id).where(Job.task_id.in_(list(task_ids))))
    return {r for r in rows.all() if r}


async def unresolved_creates(session: AsyncSession, model: str, *, exclude_id: str) -> list[Job]:
    """Other jobs of this model whose create is in flight or whose outcome is still unknown."""
    query = select(Job).where(
        Job.model == model,
        Job.status == JobStatus.QUEUED.value,
        Job.submit_started_at.is_not(None),
        Job.id != exclude_id,
    )
    return list((await session.scalars(query)).all())


async def next_due_at(session: AsyncSession, now: datetime) -> datetime | None:
    """When the next active job becomes due (for the loop's idle wait).

    Rows already due but not claimed are waiting for an upstream slot: a slot frees when a handler
    finishes (which wakes the loop) or within a poll interval, so they must not make the loop spin.
    """
    query = select(func.min(Job.next_attempt_at)).where(
        Job.status.in_([s.value for s in JobStatus if not s.terminal]),
        Job.next_attempt_at > now,
    )
    value: datetime | None = await session.scalar(query)
    return value


async def events_after(session: AsyncSession, job_id: str, after_id: int, limit: int = 100) -> list[JobEvent]:
    rows = await session.scalars(
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
        .order_by(JobEvent.id)
        .limit(limit)
    )
    return list(rows.all())


async def last_event_id(session: AsyncSession, job_id: str) -> int:
    value = await session.scalar(select(func.max(JobEvent.id)).where(JobEvent.job_id == job_id))
    return int(value or 0)
