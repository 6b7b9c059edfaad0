"""Engine and session factories: SQLite pragmas, WAL and write-locking transactions, or a Postgres pool.

SQLite: the journal mode is set to WAL once per database (`set_wal`, when the engine is created and by
`migrate`), never per connection; each connection gets its busy timeout, foreign keys and
`synchronous=NORMAL`. The file the engine opened is remembered (`availability.SqliteFile`) and checked
before every connection and transaction, so a deleted or replaced file is refused, not written into.

Two kinds of session (`session_factory`, `read_session_factory`), on one pool:
- **Writes** (and any read that must see a consistent state across statements) run in a transaction;
  on SQLite it takes the write lock up front (`BEGIN IMMEDIATE`), and the transactions of one process take
  turns for it in arrival order (`_WriteTurns`) instead of each polling SQLite's busy handler, which
  sleeps up to 100 ms between tries (under 32 concurrent submissions, most time went there).
- **Reads** of one statement run in autocommit: on SQLite no `BEGIN` at all (in WAL mode a statement
  reads its own snapshot and never waits for the write lock), on Postgres `AUTOCOMMIT` (no BEGIN and
  ROLLBACK round trips). Only for sessions that never write: a write there would commit at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util.concurrency import await_only, in_greenlet

from app.db.availability import SqliteFile

log = logging.getLogger(__name__)

#: How long SQLite waits for a lock (busy timeout), and how long switching a new database to WAL is
#: retried while another process holds it (that switch fails at once instead of waiting).
SQLITE_LOCK_TIMEOUT_S = 30.0
#: Postgres: how long to wait for a new connection; a server that does not answer is "unavailable"
#: after this, not a request hanging for the driver's default 60 s.
CONNECT_TIMEOUT_S = 10.0

_FILES: weakref.WeakKeyDictionary[Engine, SqliteFile] = weakref.WeakKeyDictionary()
#: The execution option that makes a connection's statements autocommit reads (`read_session_factory`).
_READS = "wan_autocommit_reads"
#: Where a connection keeps the write turn it holds (its pool record's `info`).
_TURN = "wan_write_turn"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file of a file-backed SQLite URL; None for Postgres, `:memory:` and `file:` URIs."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or parsed.query.get("uri"):
        return None
    return Path(database)


def ensure_sqlite_directory(url: str) -> None:
    """SQLite creates the file but not its directory (`./data/` on a fresh checkout)."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def set_wal(path: Path, *, within_s: float = SQLITE_LOCK_TIMEOUT_S) -> None:
    """Put the database file in WAL mode (creating it if need be). WAL is a property of the file, so this
    is done once per database, not per connection: the switch takes an exclusive lock and fails at once
    (the busy handler does not wait for it) when another process holds the file, e.g. an API and a
    worker starting together on a new database. So it is retried on "locked" for up to `within_s`."""
    deadline = time.monotonic() + within_s
    delay = 0.01
    while True:
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=within_s)) as conn:
                mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
                if mode != "wal":
                    mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
                if mode != "wal":  # e.g. a filesystem without shared memory: SQLite keeps its mode
                    log.warning("SQLite kept journal_mode=%s for %s (WAL is not available there)", mode, path)
                return
        except sqlite3.OperationalError as error:
            if (error.sqlite_errorcode & 0xFF) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if is_sqlite(url):
        ensure_sqlite_directory(url)
        path = sqlite_path(url)
        file = None
        if path is not None:
            set_wal(path)  # milliseconds, unless another process is switching it right now
            file = SqliteFile.of(path)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": SQLITE_LOCK_TIMEOUT_S})
        _configure_sqlite(engine, file)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        # A pooled connection that died (server restarted, network cut) is noticed and replaced at
        # checkout, so the gateway recovers from an outage without a restart.
        pool_pre_ping=True,
        connect_args={"timeout": CONNECT_TIMEOUT_S},
    )


def sqlite_file(engine: AsyncEngine) -> SqliteFile | None:
    """The SQLite file the engine opened (None for Postgres and in-memory databases)."""
    return _FILES.get(engine.sync_engine)


def _configure_sqlite(engine: AsyncEngine, file: SqliteFile | None) -> None:
    """A busy timeout, foreign keys, and `BEGIN IMMEDIATE` for every transaction; the file check.

    pysqlite's own implicit BEGIN is deferred: a transaction that reads and then writes can fail with
    SQLITE_BUSY when another connection wrote in between, and busy_timeout does not help there. Taking
    the write lock up front makes claims and compare-and-set updates serialize instead of failing.
    Nothing holds a transaction across an upstream call, so the lock is held for milliseconds.
    """
    if file is not None:
        _FILES[engine.sync_engine] = file

        @event.listens_for(engine.sync_engine, "do_connect")
        def _before_connect(*_: Any) -> None:
            file.check()  # else SQLite would create a new, empty file where the old one was

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_LOCK_TIMEOUT_S * 1000)}")
        cursor.close()

    turns = _WriteTurns()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if file is not None:
            file.check()  # one stat(): a deleted or replaced file is never written into
        if conn.get_execution_options().get(_READS):
            return  # autocommit: each statement reads its own snapshot, no lock taken
        turns.take(conn)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turns.give_back(conn)
            raise

    # The turn passes on as the transaction ends (commit or rollback, also the pool's reset on return),
    # and at the latest when the connection goes back to the pool or is discarded.
    @event.listens_for(engine.sync_engine, "commit")
    @event.listens_for(engine.sync_engine, "rollback")
    def _on_end(conn: Connection) -> None:
        turns.give_back(conn)

    @event.listens_for(engine.sync_engine.pool, "checkin")
    @event.listens_for(engine.sync_engine.pool, "close")
    def _on_release(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            _WriteTurns.release(record.info)

    @event.listens_for(engine.sync_engine.pool, "invalidate")
    @event.listens_for(engine.sync_engine.pool, "reset")
    def _on_reset(_dbapi_connection: Any, record: Any, _state: Any) -> None:
        if record is not None:
            _WriteTurns.release(record.info)


class _WriteTurns:
    """The write transactions of one engine take turns for SQLite's write lock, first come first served.

    Without it, every `BEGIN IMMEDIATE` that finds the lock taken sleeps in SQLite's busy handler (1, 2,
    5, … up to 100 ms between tries, whoever comes first wins), so under load a submission waits far
    longer than the few milliseconds the writer ahead of it holds the lock. Here a transaction waits on an
    asyncio lock (one per event loop) until the one before it ends; SQLite's busy timeout still covers
    other processes (a worker, a CLI). Waiting is bounded by the same timeout as SQLite's, and ends in the
    same error (`database is locked`), so a transaction that would have failed still fails.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def take(self, conn: Connection) -> None:
        if not in_greenlet():
            return  # a plain sync use (no event loop to wait in): SQLite's busy handler alone
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        try:
            await_only(_acquire(lock))
        except TimeoutError:
            raise sa_exc.OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            ) from None
        conn.info[_TURN] = lock

    @staticmethod
    def give_back(conn: Connection) -> None:
        _WriteTurns.release(conn.info)

    @staticmethod
    def release(info: dict[Any, Any]) -> None:
        lock = info.pop(_TURN, None)
        if lock is not None and lock.locked():
            lock.release()


async def _acquire(lock: asyncio.Lock) -> None:
    # asyncio.timeout, not wait_for: wait_for wraps the wait in a task of its own (Python 3.11).
    async with asyncio.timeout(SQLITE_LOCK_TIMEOUT_S):
        await lock.acquire()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose transactions may write (on SQLite: the write lock, taken up front)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, its statements in autocommit: for reads of one statement each."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{_READS: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that only read, a statement at a time (see the module's docstring): never write in one."""
    return async_sessionmaker(reader(engine), expire_on_commit=False)
