"""Deliveries for the API: a job's attempt log, and manual replays under the same `webhook-id`."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.errors import NotFound
from app.jobs import schemas as api
from app.jobs.models import JobEvent, plausible_id
from app.statuses import DeliveryStatus
from app.webhooks import repository
from app.webhooks.models import WebhookAttempt, WebhookDelivery


class DeliveryService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], on_scheduled: Callable[[], None]) -> None:
        self._sessions = sessions
        self._on_scheduled = on_scheduled

    async def list(self, job_id: str) -> api.DeliveryList:
        async with self._sessions() as session:
            rows = await repository.for_job(session, job_id)
            query = select(JobEvent.id, JobEvent.type).where(JobEvent.id.in_([d.event_id for d, _ in rows]))
            types = {event_id: kind for event_id, kind in (await session.execute(query)).all()}
        return api.DeliveryList(
            data=[_public(d, attempts, types.get(d.event_id, "")) for d, attempts in rows]
        )

    async def redeliver(self, job_id: str, delivery_id: str) -> api.Delivery:
        """Send the same event again now, under the same webhook-id, with a fresh retry schedule."""
        if not plausible_id(delivery_id):
            raise NotFound(f"no delivery {delivery_id[:100]!r} for job {job_id}")
        async with self._sessions.begin() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.job_id != job_id:
                raise NotFound(f"no delivery {delivery_id} for job {job_id}")
            await repository.rearm(session, delivery.url)  # asking again means the endpoint is wanted
            now = utcnow()
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(
                    status=DeliveryStatus.PENDING,
                    schedule_index=0,
                    next_attempt_at=now,
                    finished_at=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    version=WebhookDelivery.version + 1,
                    updated_at=now,
                )
            )
        self._on_scheduled()
        listed = await self.list(job_id)
        return next(d for d in listed.data if d.id == delivery_id)


def _public(delivery: WebhookDelivery, attempts: list[WebhookAttempt], event_type: str) -> api.Delivery:
    return api.Delivery(
        id=delivery.id,
        event_id=delivery.event_id,
        type=event_type,
        url=delivery.url,
        status=delivery.status.value,
        attempt_count=delivery.attempt_count,
        next_attempt_at=delivery.next_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
        attempts=[
            api.DeliveryAttempt(
                attempted_at=a.attempted_at,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
                response_body=a.response_body,
            )
            for a in attempts
        ],
    )
