"""SQL for deliveries: lease-based claims, compare-and-set outcomes, the attempt log. Never commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import rowcount, utcnow
from app.db.leases import lease, unleased
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


async def claim_due(
    session: AsyncSession, count: int, owner: str, now: datetime, lease_until: datetime
) -> list[WebhookDelivery]:
    query = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            unleased(WebhookDelivery, now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(count)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.scalars(query)).all())
    return await lease(session, WebhookDelivery, ids, owner, lease_until)


async def finish_attempt(session: AsyncSession, delivery: WebhookDelivery, **values: Any) -> bool:
    """Record the outcome iff the delivery is still ours (same version); releases the lease."""
    now = utcnow()
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id, WebhookDelivery.version == delivery.version)
        .values(
            **values, lease_owner=None, lease_expires_at=None, version=delivery.version + 1, updated_at=now
        )
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def add_attempt(session: AsyncSession, **values: Any) -> None:
    session.add(WebhookAttempt(**values))
    await session.flush()


async def is_gone(session: AsyncSession, url: str) -> bool:
    return await session.get(WebhookEndpoint, url) is not None


async def mark_gone(session: AsyncSession, url: str, delivery_id: str) -> None:
    if await session.get(WebhookEndpoint, url) is None:
        session.add(WebhookEndpoint(url=url, delivery_id=delivery_id, gone_at=utcnow()))
        await session.flush()


async def rearm(session: AsyncSession, url: str) -> None:
    """A client names this endpoint again: it is wanted after all."""
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.url == url))


async def for_job(session: AsyncSession, job_id: str) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    deliveries = list(
        (
            await session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.job_id == job_id)
                .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
            )
        ).all()
    )
    attempts = (
        await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([d.id for d in deliveries]))
            .order_by(WebhookAttempt.id)
        )
    ).all()
    by_delivery: dict[str, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    for attempt in attempts:
        by_delivery[attempt.delivery_id].append(attempt)
    return [(d, by_delivery[d.id]) for d in deliveries]


async def next_due_at(session: AsyncSession, now: datetime) -> datetime | None:
    value: datetime | None = await session.scalar(
        select(func.min(WebhookDelivery.next_attempt_at)).where(
            WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at > now
        )
    )
    return value
