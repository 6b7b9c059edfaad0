"""Upstream slots are shared fairly across tenants: the submit claim's order (`claim_for_submit`).

Each slot goes to the tenant with the fewest slots of the family in use; ties to the tenant served least
recently (never served first), then to the oldest waiting job; FIFO within a tenant; jobs without an
owner (client auth off) are one tenant. Rows are inserted directly with chosen times; the claim runs on
the test's database (SQLite, or Postgres under scripts/with-postgres.sh).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.db.engine import create_engine, session_factory
from app.jobs import repository
from app.jobs.models import Job
from app.jobs.schemas import JobCreate
from app.jobs.states import JobStatus
from tests.conftest import TEST_DATABASE_URL, Served, make_settings, serve
from tests.helpers import data_uri, wait_for

GROUP = "wan2.6"
T0 = utcnow() - timedelta(hours=1)


@dataclass
class Queue:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    names: dict[str, str] = field(default_factory=dict)  # job id -> readable name
    ticks: int = 0

    async def add(
        self, name: str, owner: str | None, status: JobStatus = JobStatus.QUEUED, **values: object
    ) -> Job:
        """A job of the family, created one second after the previous one."""
        self.ticks += 1
        at = T0 + timedelta(seconds=self.ticks)
        columns: dict[str, object] = {
            "owner": owner,
            "status": status.value,
            "version": 0,
            "model": "wan2.6-i2v-flash",
            "limit_group": GROUP,
            "request": {},
            "warnings": [],
            "next_attempt_at": at,
            "deadline_at": at + timedelta(days=1),
            "created_at": at,
            "updated_at": at,
        }
        job = Job(**{**columns, **values})
        async with self.sessions.begin() as session:
            await repository.insert(session, job)
        self.names[job.id] = name
        return job

    async def backlog(self, owner: str | None, count: int, prefix: str) -> None:
        for i in range(1, count + 1):
            await self.add(f"{prefix}{i}", owner)

    async def claim(self, count: int, now: datetime | None = None) -> list[str]:
        now = now or utcnow()
        async with self.sessions.begin() as session:
            jobs = await repository.claim_for_submit(
                session, GROUP, count, "worker-1", now, now + timedelta(minutes=1)
            )
        return [self.names[job.id] for job in jobs]

    async def finish(self, names: list[str]) -> None:
        """Those claimed jobs were created upstream and have finished there: their slots are free."""
        ids = [job_id for job_id, name in self.names.items() if name in names]
        async with self.sessions.begin() as session:
            for job in (await session.scalars(select(Job).where(Job.id.in_(ids)))).all():
                job.status = JobStatus.SUCCEEDED
                job.submitted_at = job.submit_started_at
                job.submit_started_at = None
                job.lease_owner = job.lease_expires_at = None


@pytest.fixture
async def queue(database_url: str) -> AsyncIterator[Queue]:
    engine = create_engine(database_url)
    yield Queue(engine, session_factory(engine))
    await engine.dispose()


async def test_each_tenant_gets_a_slot_before_anyone_gets_a_second(queue: Queue) -> None:
    await queue.backlog("a", 30, "a")
    await queue.add("b1", "b")
    await queue.add("c1", "c")
    # FIFO would hand out a1..a5; fair order interleaves, and keeps each tenant's own order.
    assert await queue.claim(5) == ["a1", "b1", "c1", "a2", "a3"]


async def test_a_slot_goes_to_the_tenant_with_fewest_slots_in_use(queue: Queue) -> None:
    await queue.add("a-running", "a", JobStatus.RUNNING, submitted_at=T0)
    await queue.add("a-creating", "a", submit_started_at=utcnow())  # a create in flight holds a slot too
    await queue.add("b-running", "b", JobStatus.RUNNING, submitted_at=T0)
    await queue.add("a-storing", "a", JobStatus.STORING, submitted_at=T0)  # holds no slot any more
    await queue.backlog("a", 10, "a")
    await queue.backlog("b", 10, "b")
    await queue.add("c1", "c")
    # In use: a 2, b 1, c 0. c first; then b (1 in use); then a and b both hold 2: the oldest job first.
    assert await queue.claim(4) == ["c1", "b1", "a1", "b2"]


async def test_one_slot_alternates_between_tenants(queue: Queue) -> None:
    """With one slot a tenant's in-use count is always 0 when it frees: the tie goes to the tenant that
    waited since before its last turn (never served first), not to the owner of the oldest job."""
    await queue.backlog("a", 30, "a")
    await queue.backlog("b", 2, "b")
    order = []
    for _ in range(6):
        claimed = await queue.claim(1)
        await queue.finish(claimed)
        order += claimed
    assert order == ["a1", "b1", "a2", "b2", "a3", "a4"]


async def test_jobs_without_an_owner_are_one_tenant(queue: Queue) -> None:
    await queue.add("anon-running", None, JobStatus.RUNNING, submitted_at=T0)
    await queue.add("a1", "a")
    await queue.backlog(None, 3, "anon")
    await queue.add("a2", "a")
    # The owner-less jobs share one slot count (1 in use) and one turn; as three tenants of one job
    # each they would take anon1..anon3 at once.
    assert await queue.claim(4) == ["a1", "a2", "anon1", "anon2"]
    await queue.finish(["a1", "a2", "anon1", "anon2"])
    await queue.add("b1", "b")
    assert await queue.claim(2) == ["b1", "anon3"]


async def test_the_claim_records_the_attempt_and_skips_leased_or_undue_jobs(queue: Queue) -> None:
    now = utcnow()
    await queue.add("a-leased", "a", lease_owner="worker-2", lease_expires_at=now + timedelta(minutes=1))
    await queue.add("a-later", "a", next_attempt_at=now + timedelta(minutes=1))  # backing off
    await queue.add("a-sent", "a", submit_started_at=T0)  # being created (holds a slot)
    await queue.add("a1", "a")
    await queue.add("b1", "b")
    assert await queue.claim(3, now) == ["b1", "a1"]
    async with queue.sessions() as session:
        rows = (await session.scalars(select(Job).where(Job.submit_started_at == now))).all()
    claimed = {queue.names[job.id]: job for job in rows}
    assert set(claimed) == {"a1", "b1"}
    for job in claimed.values():
        assert (job.lease_owner, job.submit_attempts, job.version) == ("worker-1", 1, 1)


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="row locks: Postgres (SQLite serializes every write)")
async def test_a_row_locked_elsewhere_is_skipped_and_the_next_in_fair_order_taken(queue: Queue) -> None:
    await queue.backlog("a", 5, "a")
    b1 = await queue.add("b1", "b")
    async with queue.sessions.begin() as other:
        # Someone else holds b1 (e.g. a cancel writing it): the claim must not wait for it.
        await other.execute(select(Job.id).where(Job.id == b1.id).with_for_update())
        claimed = await asyncio.wait_for(queue.claim(2), timeout=10)
    assert claimed == ["a1", "a2"]


# --- end to end: the gateway's own loop against its sandbox ----------------------------------------------


async def claimed_for_submit(served: Served) -> set[str]:
    """Jobs the loop has taken for a create (in whatever state they are now)."""
    async with served.gateway.sessions() as session:
        return set((await session.scalars(select(Job.id).where(Job.submit_attempts > 0))).all())


@pytest.mark.parametrize("slots", [1, 2])
async def test_a_tenants_backlog_does_not_hold_back_another_tenants_job(
    tmp_path: Path, database_url: str, slots: int
) -> None:
    settings = make_settings(tmp_path, database_url, upstream_max_inflight=f"wan2.6={slots}")
    async with serve(settings) as served:
        service, poller = served.gateway.service, served.gateway.poller
        body = JobCreate(prompt="a cat", duration=2, size="1280*720", reference_image=data_uri(640, 360))
        names = {(await service.create(body, owner="a")).id: f"a{i:02}" for i in range(1, 31)}

        async def sent(count: int) -> list[str] | None:
            """Run the loop once; the names of the jobs taken for a create so far, once there are `count`."""
            await poller.run_once()
            got = sorted(names[job_id] for job_id in await claimed_for_submit(served))
            return got if len(got) >= count else None

        # Only a was waiting: a's oldest jobs take every slot.
        assert await sent(slots) == [f"a{i:02}" for i in range(1, slots + 1)]

        names[(await service.create(body, owner="b")).id] = "b"
        names[(await service.create(body)).id] = "no-owner"
        # FIFO would send a's 28 other jobs first. Fair: the next two slots to free go to b and to the
        # owner-less tenant (neither was served yet; a just was), and nothing else is sent meanwhile.
        got = await wait_for(lambda: sent(slots + 2), within=30, what="two more jobs to be sent")
        assert got == sorted([f"a{i:02}" for i in range(1, slots + 1)] + ["b", "no-owner"])

        # Then a's backlog resumes, oldest first. (On a loaded machine one pass of the loop may find a third
        # slot freed by then, so a's jobs are checked as a prefix of its backlog, not as an exact count.)
        got = await wait_for(lambda: sent(slots + 4), within=30, what="two more of a's jobs to be sent")
        assert "b" in got and "no-owner" in got
        a_sent = [name for name in got if name.startswith("a")]
        assert a_sent == [f"a{i:02}" for i in range(1, len(a_sent) + 1)], "a's backlog out of order"


async def test_queue_positions_are_the_claim_order(queue: Queue) -> None:
    """What clients see as `queue_position` is the order the claim hands out slots in."""
    await queue.add("a-running", "a", JobStatus.RUNNING, submitted_at=T0)
    await queue.add("b-running", "b", JobStatus.RUNNING, submitted_at=T0 + timedelta(seconds=1))
    await queue.backlog("a", 5, "a")
    await queue.backlog("b", 3, "b")
    await queue.backlog(None, 2, "anon")
    await queue.add("follower", "a", source_job_id="job_elsewhere")  # waits for another job: no place
    waiting = [job_id for job_id, name in queue.names.items() if "running" not in name]
    async with queue.sessions() as session:
        positions = await repository.queue_positions(session, GROUP, waiting)
    assert sorted(positions.values()) == list(range(1, 11))
    in_line = [queue.names[job_id] for job_id in sorted(positions, key=positions.__getitem__)]
    # anon holds no slot: its first two go first (the second ties with a1, b1 and was never served).
    assert in_line[:4] == ["anon1", "anon2", "a1", "b1"]
    assert await queue.claim(10) == in_line
