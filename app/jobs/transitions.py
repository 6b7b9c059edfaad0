"""Changing a job's status: the one place that does it, inside the caller's transaction.

`Transitions.write` checks the move against `states.py`, writes it by compare-and-set
(`repository.cas_update`), appends the event (the job as GET shows it, `job_events`), lets the
subscribers of events add their rows (the webhooks' outbox: a delivery per endpoint that wants the event)
and, when a job that runs on its own ends, resolves its followers the same way, each with its own event.
A job's price changes with its status here too (`charges.py`, by the `Pricing` the lifespan hands in):
estimated on insert, billed (or 0) in the compare-and-set that ends it. It returns what changed: the
jobs that entered a new status, which the caller announces (`ChangeFeed`) once its transaction has
committed. `Transitions.insert` does the same for a new job's first status.

All of it happens in one transaction, so a crash can never leave a status without its event or its
deliveries (the transactional outbox); nothing is sent from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.cost import Pricing
from app.db.base import utcnow
from app.jobs import charges, outcomes, repository
from app.jobs.models import Job, JobEvent
from app.jobs.presenter import Presenter
from app.jobs.states import JobStatus, check_transition, event_type


class EventSubscriber(Protocol):
    """Adds its own rows for a job's events in the transaction that records them (the webhooks'
    outbox: `app/webhooks/outbox.py`). The job domain knows nothing more of it."""

    async def job_created(self, session: AsyncSession, job: Job) -> None:
        """A new job was inserted (before its first event is recorded)."""
        ...

    async def event_recorded(self, session: AsyncSession, job: Job, event: JobEvent) -> None:
        """`event` (flushed: it has its id) was recorded for the status `job` just entered."""
        ...


@dataclass(frozen=True)
class Changed:
    """What a write changed, to act on once the transaction has committed."""

    #: The jobs that entered a new status (each with a new event): the job written first, then the
    #: followers it resolved. Empty when the write changed no status.
    jobs: tuple[str, ...] = ()


class Transitions:
    def __init__(
        self,
        presenter: Presenter,
        subscribers: tuple[EventSubscriber, ...] = (),
        pricing: Pricing | None = None,
    ) -> None:
        self._presenter = presenter
        self._subscribers = subscribers
        #: Prices every job at its start and its end (`charges.py`); None: jobs carry no cost.
        self._pricing = pricing

    async def insert(self, session: AsyncSession, job: Job) -> Changed:
        """Store a new job (in whatever status it starts: queued, or succeeded when it reuses a video) with
        its first event, and its price: the estimate, or 0 for a job DashScope will not bill."""
        self.price(job)
        await repository.insert(session, job)
        for subscriber in self._subscribers:
            await subscriber.job_created(session, job)
        await self._record(session, job, None)
        return Changed((job.id,))

    def price(self, job: Job) -> None:
        """Set a new job's cost columns (as `insert` does): admission reads the estimate before insert."""
        if self._pricing is None:
            return
        status = JobStatus(job.status)
        if status.terminal:
            priced = charges.at_end(self._pricing, job, status, job.upstream)
        else:
            priced = charges.at_start(self._pricing, job)
        for name, value in priced.items():
            setattr(job, name, value)

    async def write(self, session: AsyncSession, job: Job, **values: Any) -> Changed | None:
        """Write `values` iff the job is still at `job.version` (None otherwise: someone else changed it,
        and nothing was written). A `status` different from the job's must be a move `states.py` allows
        (else `InvalidTransition`); it records the event and, for a job that ends, resolves its followers.
        On success `job` reflects the new row."""
        now: datetime = values.pop("updated_at", None) or utcnow()
        target = values.get("status")
        previous = JobStatus(job.status)
        entering = target is not None and target != job.status
        if target is not None and entering:
            target = values["status"] = JobStatus(target)
            check_transition(JobStatus(job.status), target, follower=job.source_job_id is not None)
            if target.terminal and self._pricing is not None:
                # The billed cost is written with the terminal status, in its compare-and-set.
                values.update(
                    charges.at_end(self._pricing, job, target, values.get("upstream", job.upstream))
                )
        if not await repository.cas_update(session, job, updated_at=now, **values):
            return None
        if not entering:
            return Changed()
        await self._record(session, job, previous)
        followers: tuple[str, ...] = ()
        if JobStatus(job.status).terminal and job.source_job_id is None:
            followers = await self._resolve_followers(session, job, now)
        return Changed((job.id, *followers))

    def _priced_alone(self, follower: Job) -> dict[str, Any]:
        if self._pricing is None:
            return {}
        return charges.estimate(self._pricing, follower)

    async def _record(self, session: AsyncSession, job: Job, previous: JobStatus | None) -> JobEvent:
        """Append the event for the status `job` just entered (from `previous`), and whatever its
        subscribers add; its metrics (`outcomes.py`) count once the transaction commits."""
        event = JobEvent(
            job_id=job.id,
            type=event_type(JobStatus(job.status)),
            data=self._presenter.job_json(job),
            created_at=utcnow(),
        )
        session.add(event)
        await session.flush()
        for subscriber in self._subscribers:
            await subscriber.event_recorded(session, job, event)
        outcomes.record(session, job, previous)
        return event

    async def _resolve_followers(self, session: AsyncSession, job: Job, now: datetime) -> tuple[str, ...]:
        """`job` just ended: its followers end the same way (succeeded: its video, `cached`; failed: its
        error). Canceled: nothing to share, so the oldest follower is released to be submitted on its own
        and the others follow it instead (no status changes). A follower that changed meanwhile (canceled,
        failed at its deadline) fails its compare-and-set and is left alone. Returns the followers that
        entered a new status."""
        followers = await repository.queued_followers(session, job.id)
        unleash: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
        status = JobStatus(job.status)
        if status is JobStatus.CANCELED:
            leader: Job | None = None
            for follower in followers:
                if leader is None:
                    # It runs on its own now, so it will be billed: it gets the estimate a new job has.
                    priced = self._priced_alone(follower)
                    if await self.write(
                        session, follower, source_job_id=None, next_attempt_at=now, **unleash, **priced
                    ):
                        leader = follower
                else:
                    await self.write(session, follower, source_job_id=leader.id, **unleash)
            return ()
        ending: dict[str, Any] = (
            # The video is the job's: the follower cost nothing upstream, nor any quota.
            {"storage_key": job.storage_key, "result": job.result, "video_seconds": 0.0}
            if status is JobStatus.SUCCEEDED
            else {"error": job.error}
        )
        resolved: list[str] = []
        for follower in followers:
            changed = await self.write(
                session, follower, status=status, finished_at=now, next_attempt_at=None, **ending, **unleash
            )
            if changed is not None:
                resolved += changed.jobs
        return tuple(resolved)
