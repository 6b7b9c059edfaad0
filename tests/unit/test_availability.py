"""`is_unavailable`: an unreachable, locked or lost database (503, retry later) versus a bug (500)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from asyncpg import exceptions as pg  # type: ignore[import-untyped]
from sqlalchemy import exc

from app.db.availability import DatabaseFileLost, is_unavailable


def sqlite_error(message: str) -> sqlite3.Error:
    """A real sqlite3 error (with its result code), as the driver raises it."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute(message)
    except sqlite3.Error as error:
        return error
    raise AssertionError("no error")


def locked_error(path: Path) -> sqlite3.Error:
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        waiter.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        return error
    finally:
        holder.close()
        waiter.close()
    raise AssertionError("not locked")


def test_outages_are_unavailable(tmp_path: Path) -> None:
    cases: list[BaseException] = [
        DatabaseFileLost("the SQLite database file x was deleted"),
        exc.TimeoutError("QueuePool limit reached"),
        exc.OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused")),
        exc.InterfaceError("SELECT 1", {}, pg.InterfaceError("connection is closed")),
        exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        pg.CannotConnectNowError("the database system is starting up"),
    ]
    cases.append(exc.OperationalError("BEGIN IMMEDIATE", {}, locked_error(tmp_path / "x.db")))
    try:
        sqlite3.connect("/nonexistent-directory/x.db")
    except sqlite3.OperationalError as cantopen:
        cases.append(exc.OperationalError("connect", {}, cantopen))
    for case in cases:
        assert is_unavailable(case), case


@pytest.mark.parametrize(
    "error",
    [
        exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        exc.OperationalError("SELECT", {}, sqlite_error("SELECT * FROM no_such_table")),
        exc.ProgrammingError("SELECT", {}, Exception("syntax error")),
        OSError(28, "No space left on device"),  # raised by our own code, not while connecting
        ValueError("a bug"),
    ],
)
def test_bugs_are_not(error: BaseException) -> None:
    assert not is_unavailable(error)
