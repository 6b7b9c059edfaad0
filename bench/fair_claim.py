"""Cost of the fair submit claim with a big backlog: one tenant's queued jobs, a few other tenants, history.

Seeds a migrated database (SQLite in a temp dir, or `--database-url`, e.g. the Postgres of
`scripts/with-postgres.sh`: `scripts/with-postgres.sh sh -c '.venv/bin/python bench/fair_claim.py
--database-url "$TEST_DATABASE_URL"'`) with `--queued` due jobs of tenant "big" in one family, one queued
job each for `--tenants` other tenants (and one with no owner), `--history` finished jobs spread over
those tenants, and the family's slots all but one in use. Then times `claim_for_submit` for one slot (each
call rolled back) beside the old FIFO select, and prints the query plans. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from app.db.base import utcnow
from app.db.leases import lease, unleased
from app.db.migrate import upgrade_head
from app.jobs import repository
from app.jobs.models import Job, new_job_id
from app.jobs.states import JobStatus

GROUP = "wan2.6"


def job_row(owner: str | None, status: str, created: Any, **extra: Any) -> dict[str, Any]:
    return {
        "id": new_job_id(),
        "owner": owner,
        "status": status,
        "version": 0,
        "model": "wan2.6-i2v-flash",
        "limit_group": GROUP,
        "request": {},
        "warnings": [],
        "submit_attempts": 0,
        "poll_count": 0,
        "retry_count": 0,
        "next_attempt_at": created,
        "deadline_at": created + timedelta(days=1),
        "created_at": created,
        "updated_at": created,
        "submitted_at": None,
        "finished_at": None,
        **extra,
    }


async def seed(engine: AsyncEngine, args: argparse.Namespace) -> None:
    start = utcnow() - timedelta(hours=2)
    rows: list[dict[str, Any]] = []
    others: list[str | None] = [f"t{i}" for i in range(args.tenants)] + [None]
    for i in range(args.history):
        at = start + timedelta(milliseconds=i)
        rows.append(
            job_row(
                others[i % len(others)] if i % 2 else "big", "succeeded", at, submitted_at=at, finished_at=at
            )
        )
    for i in range(4):  # slots in use
        at = start + timedelta(hours=1, milliseconds=i)
        rows.append(job_row("big", JobStatus.RUNNING.value, at, submitted_at=at))
    for i in range(args.queued):
        rows.append(
            job_row("big", JobStatus.QUEUED.value, start + timedelta(hours=1, seconds=1, milliseconds=i))
        )
    for i, other in enumerate(others):
        rows.append(job_row(other, JobStatus.QUEUED.value, start + timedelta(hours=1, minutes=30, seconds=i)))
    async with engine.begin() as conn:
        for chunk in range(0, len(rows), 2000):
            await conn.execute(insert(Job), rows[chunk : chunk + 2000])
    if engine.dialect.name == "postgresql":  # autovacuum would have; SQLite has no stats unless asked
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()


def old_fifo(now: Any) -> Any:
    return (
        select(Job.id)
        .where(
            Job.limit_group == GROUP,
            Job.status == JobStatus.QUEUED.value,
            Job.submit_started_at.is_(None),
            Job.next_attempt_at <= now,
            unleased(Job, now),
        )
        .order_by(Job.created_at, Job.id)
        .limit(1)
    )


async def timed(
    engine: AsyncEngine, step: Callable[[AsyncSession], Awaitable[Any]], runs: int
) -> list[float]:
    spent = []
    for _ in range(runs):
        async with AsyncSession(engine) as session, session.begin():
            began = time.perf_counter()
            await step(session)
            spent.append((time.perf_counter() - began) * 1000)
            await session.rollback()
    return spent


async def plan(engine: AsyncEngine, query: Any) -> str:
    dialect = engine.dialect
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    prefix = (
        "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(text(prefix + sql))).all()
    return "\n".join("  " + " | ".join(str(c) for c in row) for row in rows)


async def main(args: argparse.Namespace) -> None:
    url = args.database_url
    tmp = None
    if url is None:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.db'}"
    await asyncio.to_thread(upgrade_head, url)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM jobs"))
        await seed(engine, args)
        now = utcnow()
        until = now + timedelta(minutes=1)
        got: list[tuple[str | None, Any]] = []

        async def fair(session: AsyncSession) -> None:
            jobs = await repository.claim_for_submit(session, GROUP, 1, "bench", now, until)
            got[:] = [(job.owner, job.created_at) for job in jobs]

        async def ranking(session: AsyncSession) -> None:
            in_use = await repository.upstream_slots_by_owner(session, GROUP)
            await session.scalars(repository.fair_submit_order(GROUP, 1, now, in_use))

        async def fifo(session: AsyncSession) -> None:
            """The claim before fair order: the oldest due job, locked, then leased."""
            ids = list((await session.scalars(old_fifo(now).with_for_update(skip_locked=True))).all())
            await lease(session, Job, ids, "bench", until, updated_at=now, submit_started_at=now)

        print(
            f"{engine.dialect.name}: {args.queued} queued for tenant 'big', {args.tenants + 1} other tenants "
            f"with one queued job, {args.history} finished jobs; claiming 1 slot, {args.runs} runs"
        )
        steps = (
            ("fair claim (rank, lock, lease)", fair),
            ("  of which the ranking", ranking),
            ("FIFO claim (before; lock, lease)", fifo),
        )
        for name, step in steps:
            spent = await timed(engine, step, args.runs)
            print(f"  {name:32} median {statistics.median(spent):7.2f} ms   max {max(spent):7.2f} ms")
        print(f"  the slot went to tenant {got[0][0]!r} (job created {got[0][1]:%H:%M:%S})")
        print("plan of the ranking query:")
        async with AsyncSession(engine) as session:
            in_use = await repository.upstream_slots_by_owner(session, GROUP)
        print(await plan(engine, repository.fair_submit_order(GROUP, 1, now, in_use)))
    finally:
        await engine.dispose()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
