"""The webhooks' side of the outbox: a delivery per endpoint that wants a job's event, written in the
transaction that records the event (`jobs/transitions.py` calls it), so a crash can never leave an event
without its deliveries; the dispatcher sends them later, from the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job, JobEvent
from app.jobs.states import TERMINAL_EVENTS
from app.statuses import DeliveryStatus
from app.webhooks import repository
from app.webhooks.models import WebhookDelivery


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    events: frozenset[str]


class WebhookOutbox:
    """A `transitions.EventSubscriber`: the job's own endpoint (`webhook_url`, for `webhook_events`,
    the terminal ones by default) and the gateway-wide default one (WEBHOOK_DEFAULT_URL), if any."""

    def __init__(self, default_target: WebhookTarget | None = None) -> None:
        self._default = default_target

    def targets(self, job: Job, event_type: str) -> list[str]:
        urls = []
        if job.webhook_url and event_type in (job.webhook_events or TERMINAL_EVENTS):
            urls.append(job.webhook_url)
        if self._default and event_type in self._default.events and self._default.url not in urls:
            urls.append(self._default.url)
        return urls

    async def job_created(self, session: AsyncSession, job: Job) -> None:
        """A client names its endpoint again: it is wanted after all, even if it once answered 410."""
        if job.webhook_url:
            await repository.rearm(session, job.webhook_url)

    async def event_recorded(self, session: AsyncSession, job: Job, event: JobEvent) -> None:
        for url in self.targets(job, event.type):
            session.add(
                WebhookDelivery(
                    job_id=job.id,
                    event_id=event.id,
                    url=url,
                    status=DeliveryStatus.PENDING,
                    version=0,
                    attempt_count=0,
                    schedule_index=0,
                    next_attempt_at=event.created_at,
                    created_at=event.created_at,
                    updated_at=event.created_at,
                )
            )
        await session.flush()
