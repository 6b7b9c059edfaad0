"""Queue figures for operators: jobs per status, upstream slots in use per family, the oldest due job.

Read by `GET /v1/admin/stats` and `/metrics` (Prometheus). One cheap aggregate query per figure; the
claim indexes (status, next_attempt_at) serve them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job
from app.jobs.repository import UPSTREAM_ACTIVE
from app.jobs.states import ACTIVE, JobStatus
from app.statuses import DeliveryStatus
from app.webhooks.models import WebhookDelivery


@dataclass(frozen=True)
class QueueStats:
    jobs_by_status: dict[str, int]
    #: Upstream tasks that are (or may be) PENDING/RUNNING, per model family: what the caps count.
    upstream_in_flight: dict[str, int]
    #: Jobs whose next step is due now (to submit, poll, store), and how late the oldest of them is.
    due_jobs: int
    oldest_due_age_s: float | None
    #: Jobs claimed by a worker right now (a live lease).
    leased_jobs: int
    deliveries_by_status: dict[str, int] = field(default_factory=dict)
    oldest_due_delivery_age_s: float | None = None


async def queue_stats(session: AsyncSession, now: datetime) -> QueueStats:
    by_status = await _counts(session, select(Job.status, func.count()).group_by(Job.status))
    in_flight = await _counts(
        session,
        select(Job.limit_group, func.count())
        .where(
            or_(
                Job.status.in_(UPSTREAM_ACTIVE),
                and_(Job.status == JobStatus.QUEUED.value, Job.submit_started_at.is_not(None)),
            )
        )
        .group_by(Job.limit_group),
    )
    due_count, oldest_due = (
        await session.execute(
            select(func.count(), func.min(Job.next_attempt_at)).where(
                Job.next_attempt_at <= now, Job.status.in_([s.value for s in ACTIVE])
            )
        )
    ).one()
    # Active jobs only: the retention loop's leases on succeeded jobs are not work in hand.
    leased = await session.scalar(
        select(func.count()).where(Job.lease_expires_at > now, Job.status.in_([s.value for s in ACTIVE]))
    )
    deliveries = await _counts(
        session, select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    )
    oldest_delivery = await session.scalar(
        select(func.min(WebhookDelivery.next_attempt_at)).where(
            WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now
        )
    )
    return QueueStats(
        jobs_by_status={s.value: by_status.get(s.value, 0) for s in JobStatus},
        upstream_in_flight=in_flight,
        due_jobs=int(due_count or 0),
        oldest_due_age_s=_age(now, oldest_due),
        leased_jobs=int(leased or 0),
        deliveries_by_status=deliveries,
        oldest_due_delivery_age_s=_age(now, oldest_delivery),
    )


async def _counts(session: AsyncSession, query: Select[str, int]) -> dict[str, int]:
    return {str(key): int(count) for key, count in (await session.execute(query)).all()}


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())
