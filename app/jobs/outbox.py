"""The outbox: a job's status change, its event row and its webhook deliveries commit together.

`Outbox.record` runs inside the transaction that changes the status, so a crash can never leave a change
without its event or its deliveries; the dispatcher sends them later, from the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import TERMINAL_EVENTS
from app.db.base import utcnow
from app.jobs.models import Job, JobEvent
from app.jobs.presenter import Presenter
from app.webhooks.models import WebhookDelivery


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    events: frozenset[str]


class Outbox:
    def __init__(self, presenter: Presenter, default_target: WebhookTarget | None = None) -> None:
        self._presenter = presenter
        self._default = default_target

    def targets(self, job: Job, event_type: str) -> list[str]:
        urls = []
        if job.webhook_url and event_type in (job.webhook_events or TERMINAL_EVENTS):
            urls.append(job.webhook_url)
        if self._default and event_type in self._default.events and self._default.url not in urls:
            urls.append(self._default.url)
        return urls

    async def record(self, session: AsyncSession, job: Job) -> JobEvent:
        """Append the event for the status `job` just entered, and a delivery per endpoint that wants it."""
        now = utcnow()
        event = JobEvent(
            job_id=job.id, type=f"job.{job.status}", data=self._presenter.job_json(job), created_at=now
        )
        session.add(event)
        await session.flush()
        for url in self.targets(job, event.type):
            session.add(
                WebhookDelivery(
                    job_id=job.id,
                    event_id=event.id,
                    url=url,
                    status="pending",
                    version=0,
                    attempt_count=0,
                    schedule_index=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.flush()
        return event
