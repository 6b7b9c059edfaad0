"""`Transitions`, the one place a job's status changes, on its own against the test's database (SQLite, or
Postgres under scripts/with-postgres.sh): the move is checked, written by compare-and-set, its event and
its webhook deliveries are recorded in the same transaction, a job that ends resolves its followers, and
the write returns the jobs whose status changed (what the caller announces after commit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.db.engine import create_engine, session_factory
from app.jobs.models import Job, JobEvent
from app.jobs.presenter import Presenter
from app.jobs.states import InvalidTransition, JobStatus
from app.jobs.transitions import Changed, Transitions
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.outbox import WebhookOutbox, WebhookTarget

S = JobStatus
HOOK = "https://hooks.example/job"
DEFAULT_HOOK = "https://ops.example/all"
PRESENTER = Presenter("http://gateway.test")


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    transitions: Transitions

    async def insert(self, **values: Any) -> Job:
        now = utcnow()
        columns: dict[str, Any] = {
            "status": S.QUEUED,
            "version": 0,
            "model": "wan2.6-i2v-flash",
            "limit_group": "wan2.6",
            "request": {"prompt": "a cat", "duration": 2},
            "warnings": [],
            "next_attempt_at": now,
            "deadline_at": now + timedelta(hours=1),
            "created_at": now,
            "updated_at": now,
        }
        job = Job(**{**columns, **values})
        async with self.sessions.begin() as session:
            assert await self.transitions.insert(session, job) == Changed((job.id,))
        return job

    async def write(self, job: Job, **values: Any) -> Changed | None:
        async with self.sessions.begin() as session:
            return await self.transitions.write(session, job, **values)

    async def reload(self, job: Job) -> Job:
        async with self.sessions() as session:
            row = await session.get(Job, job.id)
        assert row is not None
        return row

    async def events(self, job: Job) -> list[JobEvent]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id)
            )
            return list(rows.all())

    async def deliveries(self, job: Job) -> list[tuple[str, str]]:
        """(event type, url) of each delivery of `job`, in order."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(JobEvent.type, WebhookDelivery.url)
                .join(JobEvent, JobEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.job_id == job.id)
                .order_by(WebhookDelivery.created_at, JobEvent.id, WebhookDelivery.url)
            )
            return [(kind, url) for kind, url in rows.all()]


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    engine = create_engine(database_url)
    outbox = WebhookOutbox(WebhookTarget(DEFAULT_HOOK, frozenset({"job.queued", "job.failed"})))
    try:
        yield World(session_factory(engine), Transitions(PRESENTER, (outbox,)))
    finally:
        await engine.dispose()


async def test_a_new_job_gets_its_first_event_and_the_deliveries_that_want_it(world: World) -> None:
    job = await world.insert(webhook_url=HOOK, webhook_events=["job.queued", "job.succeeded"])
    [event] = await world.events(job)
    assert event.type == "job.queued"
    assert event.data == PRESENTER.job_json(job)  # the job as GET shows it
    assert await world.deliveries(job) == [("job.queued", HOOK), ("job.queued", DEFAULT_HOOK)]


async def test_a_job_naming_an_endpoint_that_answered_410_wants_it_again(world: World) -> None:
    async with world.sessions.begin() as session:
        session.add(WebhookEndpoint(url=HOOK, gone_at=utcnow()))
    await world.insert(webhook_url=HOOK)
    async with world.sessions() as session:
        assert await session.get(WebhookEndpoint, HOOK) is None


async def test_a_status_change_is_written_with_its_event_and_deliveries_and_reported(world: World) -> None:
    job = await world.insert(webhook_url=HOOK)  # terminal events by default
    version = job.version
    assert await world.write(job, status=S.SUBMITTED, task_id="t-1") == Changed((job.id,))
    assert await world.write(job, status=S.RUNNING) == Changed((job.id,))
    assert await world.write(job, status=S.FAILED, error={"code": "upstream_failed", "message": "no"}) == (
        Changed((job.id,))
    )
    stored = await world.reload(job)
    assert stored.status is S.FAILED  # the column reads as the enum
    assert stored.version == job.version == version + 3
    assert [e.type for e in await world.events(job)] == [
        "job.queued",
        "job.submitted",
        "job.running",
        "job.failed",
    ]
    assert (await world.events(job))[-1].data["error"]["code"] == "upstream_failed"
    assert await world.deliveries(job) == [
        ("job.queued", DEFAULT_HOOK),
        ("job.failed", HOOK),
        ("job.failed", DEFAULT_HOOK),
    ]


async def test_a_write_that_changes_no_status_records_nothing_and_reports_no_job(world: World) -> None:
    job = await world.insert()
    assert await world.write(job, poll_count=3) == Changed()
    assert await world.write(job, status=S.QUEUED, poll_count=4) == Changed()  # the same status again
    assert (await world.reload(job)).poll_count == 4
    assert len(await world.events(job)) == 1


async def test_a_stale_copy_writes_nothing(world: World) -> None:
    job = await world.insert()
    stale = await world.reload(job)
    assert await world.write(job, status=S.SUBMITTED) is not None
    assert await world.write(stale, status=S.CANCELED) is None  # someone else moved the job meanwhile
    assert (await world.reload(job)).status is S.SUBMITTED
    assert [e.type for e in await world.events(job)] == ["job.queued", "job.submitted"]


async def test_a_move_the_state_table_forbids_is_refused_before_anything_is_written(world: World) -> None:
    job = await world.insert()
    with pytest.raises(InvalidTransition):
        await world.write(job, status=S.SUCCEEDED)  # a job that runs on its own is never queued → succeeded
    assert (await world.reload(job)).status is S.QUEUED
    assert len(await world.events(job)) == 1


async def _original_with_followers(
    world: World, count: int, status: JobStatus = S.STORING
) -> tuple[Job, list[Job]]:
    original = await world.insert(cache_key="k", status=status)
    followers = []
    for _ in range(count):
        followers.append(await world.insert(cache_key="k", source_job_id=original.id, webhook_url=HOOK))
    return original, followers


async def test_success_resolves_the_followers_with_the_video_and_reports_them(world: World) -> None:
    original, (first, second, moved) = await _original_with_followers(world, 3)
    # One follower was canceled meanwhile: it keeps that status and is not reported.
    assert await world.write(moved, status=S.CANCELED, finished_at=utcnow()) == Changed((moved.id,))
    result = {"bytes": 10, "sha256": "0" * 64, "duration": 2.0, "fps": 30.0, "seed": 7, "width": 1280}
    result |= {"height": 720, "content_type": "video/mp4"}

    changed = await world.write(
        original,
        status=S.SUCCEEDED,
        storage_key="v.mp4",
        result=result,
        video_seconds=2.0,
        finished_at=utcnow(),
    )

    assert changed == Changed((original.id, first.id, second.id))
    for follower in (first, second):
        stored = await world.reload(follower)
        assert (stored.status, stored.storage_key, stored.result) == (S.SUCCEEDED, "v.mp4", result)
        assert stored.video_seconds == 0.0 and stored.cached and stored.next_attempt_at is None
        assert [e.type for e in await world.events(follower)] == ["job.queued", "job.succeeded"]
        assert (await world.events(follower))[-1].data["cached"] is True
        assert await world.deliveries(follower) == [("job.queued", DEFAULT_HOOK), ("job.succeeded", HOOK)]
    assert (await world.reload(moved)).status is S.CANCELED


async def test_failure_resolves_the_followers_with_the_error(world: World) -> None:
    original, (follower,) = await _original_with_followers(world, 1)
    error = {"code": "upstream_failed", "message": "DashScope said no", "upstream_code": "X"}
    assert await world.write(original, status=S.FAILED, error=error, finished_at=utcnow()) == Changed(
        (original.id, follower.id)
    )
    stored = await world.reload(follower)
    assert (stored.status, stored.error) == (S.FAILED, error)
    assert [e.type for e in await world.events(follower)] == ["job.queued", "job.failed"]


async def test_cancel_releases_the_oldest_follower_and_the_others_follow_it(world: World) -> None:
    original, (first, second, third) = await _original_with_followers(world, 3, S.SUBMITTED)
    before = utcnow()
    assert await world.write(original, status=S.CANCELED, finished_at=utcnow()) == Changed((original.id,))
    leader = await world.reload(first)
    assert leader.status is S.QUEUED and leader.source_job_id is None  # submitted on its own now
    assert leader.next_attempt_at is not None and leader.next_attempt_at >= before
    for other in (second, third):
        stored = await world.reload(other)
        assert (stored.status, stored.source_job_id) == (S.QUEUED, first.id)
    async with world.sessions() as session:  # no status changed, so no event for any of them
        count = await session.scalar(
            select(func.count()).where(JobEvent.job_id.in_([first.id, second.id, third.id]))
        )
    assert count == 3  # their `job.queued` only
