"""SQLite's journal mode is WAL, set once per database (migrate or the engine's first open), never per
connection: switching takes an exclusive lock that fails at once, without waiting, when another process
holds the file, which made two processes opening one new database fail with "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sqlalchemy import text

from app.db.engine import create_engine
from app.db.migrate import upgrade_head


def in_wal_mode(path: Path) -> bool:
    """Read from the file header (bytes 18-19 are 2 in WAL mode), without opening a connection."""
    return path.read_bytes()[18:20] == b"\x02\x02"


def test_migrate_puts_a_new_database_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    upgrade_head(f"sqlite+aiosqlite:///{path}")
    assert in_wal_mode(path)


async def test_an_engine_opening_a_database_another_process_holds_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    with sqlite3.connect(path) as setup:  # a database in the default (rollback journal) mode
        setup.execute("CREATE TABLE t (x INTEGER)")
    assert not in_wal_mode(path)
    other = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process, writing right now
    other.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.2, other.execute, ("COMMIT",))
    release.start()
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
        assert in_wal_mode(path)
    finally:
        release.join()
        other.close()
        await engine.dispose()
