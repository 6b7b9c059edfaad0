"""Cost of the fair webhook claim with a big backlog: one slow origin's due deliveries, a few others, history.

Seeds a migrated database (SQLite in a temp dir, or `--database-url`, e.g. the Postgres of
`scripts/with-postgres.sh`: `scripts/with-postgres.sh sh -c '.venv/bin/python bench/fair_webhook_claim.py
--database-url "$TEST_DATABASE_URL"'`) with `--due` due deliveries to one origin that already has
`--in-flight` in flight (default 4: a tarpit at its cap; below 4 its backlog takes part in the ranking,
the costlier case), one due delivery each to `--origins` other origins, and `--history` finished
deliveries. Then times `claim_due` for 16 slots (each call rolled back) beside the old FIFO claim, and
prints the ranking query's plan. Prints figures; asserts nothing.
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
from app.jobs.models import Job, JobEvent, new_job_id
from app.statuses import DeliveryStatus
from app.webhooks import repository
from app.webhooks.models import WebhookDelivery, new_message_id
from app.webhooks.origins import origin_of

SLOTS = 16
PER_ORIGIN = 4
TARPIT = "https://tarpit.example/hook"


def delivery_row(job_id: str, event_id: int, url: str, status: str, at: Any, **extra: Any) -> dict[str, Any]:
    return {
        "id": new_message_id(),
        "job_id": job_id,
        "event_id": event_id,
        "url": url,
        "origin": origin_of(url),
        "status": status,
        "version": 0,
        "attempt_count": 0,
        "schedule_index": 0,
        "next_attempt_at": at if status == DeliveryStatus.PENDING else None,
        "created_at": at,
        "updated_at": at,
        "finished_at": None,
        "lease_owner": None,
        "lease_expires_at": None,
        **extra,
    }


async def seed(engine: AsyncEngine, args: argparse.Namespace) -> None:
    start = utcnow() - timedelta(hours=2)
    job_id = new_job_id()
    async with engine.begin() as conn:
        await conn.execute(
            insert(Job),
            [
                {
                    "id": job_id,
                    "status": "succeeded",
                    "version": 0,
                    "model": "wan2.6-i2v-flash",
                    "limit_group": "wan2.6",
                    "request": {},
                    "warnings": [],
                    "submit_attempts": 0,
                    "poll_count": 0,
                    "retry_count": 0,
                    "deadline_at": start + timedelta(days=1),
                    "created_at": start,
                    "updated_at": start,
                }
            ],
        )
        event_id = (
            await conn.execute(
                insert(JobEvent)
                .values(job_id=job_id, type="job.succeeded", data={}, created_at=start)
                .returning(JobEvent.id)
            )
        ).scalar_one()
    rows: list[dict[str, Any]] = []
    for i in range(args.history):
        at = start + timedelta(milliseconds=i)
        url = TARPIT if i % 2 else f"https://o{i % args.origins}.example/hook"
        rows.append(delivery_row(job_id, event_id, url, DeliveryStatus.SUCCEEDED, at, finished_at=at))
    lease_until = utcnow() + timedelta(minutes=1)
    for i in range(args.in_flight):  # the tarpit's deliveries in flight
        at = start + timedelta(hours=1, milliseconds=i)
        leased = {"lease_owner": "w", "lease_expires_at": lease_until}
        rows.append(delivery_row(job_id, event_id, TARPIT, DeliveryStatus.PENDING, at, **leased))
    for i in range(args.due):
        at = start + timedelta(hours=1, seconds=1, milliseconds=i)
        rows.append(delivery_row(job_id, event_id, TARPIT, DeliveryStatus.PENDING, at))
    for i in range(args.origins):
        at = start + timedelta(hours=1, minutes=30, seconds=i)
        rows.append(delivery_row(job_id, event_id, f"https://o{i}.example/hook", DeliveryStatus.PENDING, at))
    async with engine.begin() as conn:
        for chunk in range(0, len(rows), 2000):
            await conn.execute(insert(WebhookDelivery), rows[chunk : chunk + 2000])
    if engine.dialect.name == "postgresql":  # autovacuum would have; SQLite has no stats unless asked
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()


def old_fifo(now: Any) -> Any:
    return (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            unleased(WebhookDelivery, now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(SLOTS)
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
            await conn.execute(text("DELETE FROM jobs"))  # cascades on Postgres
            await conn.execute(text("DELETE FROM webhook_deliveries"))
            await conn.execute(text("DELETE FROM job_events"))
        await seed(engine, args)
        now = utcnow()
        until = now + timedelta(minutes=1)
        got: list[str] = []

        async def fair(session: AsyncSession) -> None:
            claimed = await repository.claim_due(session, SLOTS, "bench", now, until, PER_ORIGIN)
            got[:] = [d.origin for d in claimed]

        async def ranking(session: AsyncSession) -> None:
            await repository.in_flight_by_origin(session, now)
            await repository.due_by_origin(session, now)

        async def fifo(session: AsyncSession) -> None:
            """The claim before fair order: the oldest due deliveries, locked, then leased."""
            ids = list((await session.scalars(old_fifo(now).with_for_update(skip_locked=True))).all())
            await lease(session, WebhookDelivery, ids, "bench", until)

        print(
            f"{engine.dialect.name}: {args.due} due to one origin ({args.in_flight} in flight), one due to "
            f"each of {args.origins} other origins, {args.history} finished; claiming {SLOTS} slots, "
            f"{args.runs} runs"
        )
        steps = (
            ("fair claim (count, group, probe, lease)", fair),
            ("  of which count + group by origin", ranking),
            ("FIFO claim (before; lock, lease)", fifo),
        )
        for name, step in steps:
            spent = await timed(engine, step, args.runs)
            print(f"  {name:38} median {statistics.median(spent):7.2f} ms   max {max(spent):7.2f} ms")
        tarpit = sum(origin == origin_of(TARPIT) for origin in got)
        print(f"  the fair claim took {len(got)} deliveries, {tarpit} of them to the big origin")
        print("plan of the query grouping due deliveries by origin:")
        print(await plan(engine, repository.due_by_origin_query(now)))
    finally:
        await engine.dispose()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=PER_ORIGIN)
    parser.add_argument("--origins", type=int, default=20)
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
