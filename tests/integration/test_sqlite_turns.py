"""SQLite under concurrent requests: reads never wait for a writer, writers of one process take turns.

A client polling `GET /v1/jobs/{id}` must get its answer while submissions are being written, and every
submission of a burst must be stored (none failing with "database is locked", none left waiting for SQLite's
busy handler to try again): `db/engine.py` runs one-statement reads in autocommit and queues the write
transactions of a process for the write lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_engine, read_session_factory, session_factory


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT)"))
    yield engine
    await engine.dispose()


async def test_a_read_answers_while_a_write_transaction_is_open(engine: AsyncEngine) -> None:
    sessions, reads = session_factory(engine), read_session_factory(engine)
    async with sessions.begin() as writer:
        await writer.execute(text("INSERT INTO t (v) VALUES ('uncommitted')"))
        # The write lock is held until this block ends: a read that took it would wait here (30 s).
        async with reads() as reader:
            count = await asyncio.wait_for(reader.scalar(text("SELECT count(*) FROM t")), 5)
        assert count == 0  # the last committed state, not the writer's
    async with reads() as reader:
        assert await reader.scalar(text("SELECT count(*) FROM t")) == 1


async def test_a_burst_of_writers_is_stored_whole_one_after_the_other(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)

    async def write(i: int) -> None:
        async with sessions.begin() as session:
            # Read, then write, in one transaction: under a deferred BEGIN this is what fails with
            # SQLITE_BUSY; with the write lock taken up front it cannot.
            seen = await session.scalar(text("SELECT count(*) FROM t"))
            await session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{i}:{seen}"})

    await asyncio.wait_for(asyncio.gather(*(write(i) for i in range(40))), 60)
    async with read_session_factory(engine)() as reader:
        rows = (await reader.execute(text("SELECT v FROM t ORDER BY n"))).scalars().all()
    assert len(rows) == 40
    # Each transaction saw every one committed before it: they ran one after the other.
    assert [int(v.split(":")[1]) for v in rows] == list(range(40))
    assert sorted(int(v.split(":")[0]) for v in rows) == list(range(40))


async def test_a_failed_transaction_passes_the_turn_on(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)

    async def fails_midway() -> None:
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO t (v) VALUES ('rolled back')"))
            raise RuntimeError("the request failed")

    async def statement_fails() -> None:
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO t (n, v) VALUES (1, 'a'), (1, 'b')"))

    with pytest.raises(RuntimeError):
        await fails_midway()
    with pytest.raises(Exception, match="UNIQUE"):
        await statement_fails()
    async with sessions.begin() as session:  # neither kept the lock
        await asyncio.wait_for(session.execute(text("INSERT INTO t (v) VALUES ('next')")), 5)
    async with read_session_factory(engine)() as reader:
        assert (await reader.execute(text("SELECT v FROM t"))).scalars().all() == ["next"]


async def test_another_process_holding_the_lock_is_still_waited_for(engine: AsyncEngine) -> None:
    path = engine.url.database
    assert path is not None
    other = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a worker process, writing right now
        other.execute("INSERT INTO t (v) VALUES ('other')")
        loop = asyncio.get_running_loop()
        release = loop.call_later(0.2, other.execute, "COMMIT")
        sessions = session_factory(engine)
        async with sessions.begin() as session:  # SQLite's busy timeout covers other processes
            await asyncio.wait_for(session.execute(text("INSERT INTO t (v) VALUES ('ours')")), 20)
        release.cancel()
    finally:
        other.close()
    async with read_session_factory(engine)() as reader:
        assert (await reader.execute(text("SELECT v FROM t ORDER BY n"))).scalars().all() == ["other", "ours"]
