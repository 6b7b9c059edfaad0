"""Engine and session factory: SQLite pragmas, WAL and write-locking transactions, or a Postgres pool.

SQLite: the journal mode is set to WAL once per database (`set_wal`, when the engine is created and by
`migrate`), never per connection; each connection gets its busy timeout, foreign keys and
`synchronous=NORMAL`. The file the engine opened is remembered (`availability.SqliteFile`) and checked
before every connection and transaction, so a deleted or replaced file is refused, not written into.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.db.availability import SqliteFile

log = logging.getLogger(__name__)

#: How long SQLite waits for a lock (busy timeout), and how long switching a new database to WAL is
#: retried while another process holds it (that switch fails at once instead of waiting).
SQLITE_LOCK_TIMEOUT_S = 30.0
#: Postgres: how long to wait for a new connection; a server that does not answer is "unavailable"
#: after this, not a request hanging for the driver's default 60 s.
CONNECT_TIMEOUT_S = 10.0

_FILES: weakref.WeakKeyDictionary[Engine, SqliteFile] = weakref.WeakKeyDictionary()


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

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if file is not None:
            file.check()  # one stat(): a deleted or replaced file is never written into
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
