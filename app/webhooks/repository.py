"""SQL for deliveries: lease-based claims, compare-and-set outcomes, the attempt log. Never commits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import leases
from app.db.base import rowcount, utcnow
from app.db.leases import leased, unleased
from app.db.locks import LockSpace, xact_lock
from app.statuses import DeliveryStatus
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.turns import Backlog, take_turns


async def claim_due(
    session: AsyncSession,
    count: int,
    owner: str,
    now: datetime,
    lease_until: datetime,
    per_origin: int,
) -> list[WebhookDelivery]:
    """Up to `count` due deliveries, leased to `owner`, taking turns between origins (`turns.py`), and
    never so many that more than `per_origin` deliveries to one origin are in flight, counting every
    worker's: the count and the claim are serialized (an advisory lock on Postgres).

    Cost: the in-flight rows (a handful), one pass over the due rows' index entries to group them by
    origin (no sort: `ix_webhook_deliveries_status_origin_next_attempt_at` is in that order), then a probe
    of that index per origin that gets a slot.
    """
    if count <= 0:
        return []
    await xact_lock(session, LockSpace.WEBHOOK_CLAIMS)
    in_flight = await in_flight_by_origin(session, now)
    # Spare candidates: some may be skipped by `leases.claim`.
    order = take_turns(await due_by_origin(session, now), in_flight, per_origin, 2 * count)
    if not order:
        return []
    oldest = await oldest_due(session, Counter(order), now)
    ranked = [oldest[origin].pop(0) for origin in order if oldest[origin]]
    return await leases.claim(
        session, WebhookDelivery, ranked, count=count, owner=owner, now=now, until=lease_until
    )


async def in_flight_by_origin(session: AsyncSession, now: datetime) -> Counter[str]:
    """Deliveries leased now (being sent, by any worker), per origin; a crashed worker's count until their
    leases lapse. Few rows, found by `ix_webhook_deliveries_status_lease_expires_at`."""
    query = select(WebhookDelivery.origin).where(
        WebhookDelivery.status == DeliveryStatus.PENDING, leased(WebhookDelivery, now)
    )
    return Counter((await session.scalars(query)).all())


async def due_by_origin(session: AsyncSession, now: datetime) -> list[Backlog]:
    """Per origin, its due deliveries (leased ones included: they were due when claimed) and the oldest."""
    rows = (await session.execute(due_by_origin_query(now))).all()
    return [Backlog(origin, due, oldest or now) for origin, due, oldest in rows]  # never None: due rows


def due_by_origin_query(now: datetime) -> Select[str, int, datetime | None]:
    return (
        select(WebhookDelivery.origin, func.count(), func.min(WebhookDelivery.next_attempt_at))
        .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
        .group_by(WebhookDelivery.origin)
    )


async def oldest_due(
    session: AsyncSession, wanted: Mapping[str, int], now: datetime
) -> dict[str, list[tuple[str, int]]]:
    """`(id, version)` of the oldest `wanted[origin]` due, unleased deliveries of each origin, oldest
    first."""
    parts = [
        select(
            WebhookDelivery.id,
            WebhookDelivery.version,
            WebhookDelivery.origin,
            WebhookDelivery.next_attempt_at,
        )
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.origin == origin,
            WebhookDelivery.next_attempt_at <= now,
            unleased(WebhookDelivery, now),
        )
        .order_by(WebhookDelivery.next_attempt_at)  # the index's order: no sort
        .limit(n)
        .subquery()  # SQLite accepts LIMIT inside UNION ALL only in a subquery
        for origin, n in wanted.items()
    ]
    query = union_all(
        *(select(part.c.id, part.c.version, part.c.origin, part.c.next_attempt_at) for part in parts)
    )
    found: dict[str, list[tuple[datetime, str, int]]] = {origin: [] for origin in wanted}
    for delivery_id, version, origin, due_at in (await session.execute(query)).all():
        found[origin].append((due_at, delivery_id, version))
    return {
        origin: [(delivery_id, version) for _, delivery_id, version in sorted(rows)]
        for origin, rows in found.items()
    }


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
            WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at > now
        )
    )
    return value
