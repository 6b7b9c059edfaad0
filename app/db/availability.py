"""When the database cannot be used right now: the errors that say so, and the SQLite file guard.

`is_unavailable(exc)` tells "the database is unreachable or gone" (a server down, a dropped connection, a
pool that cannot hand out a connection in time, a locked or lost SQLite file) from a bug: the first is
answered `503` with `Retry-After` (app/errors.py) and the loops wait and retry; the second stays a 500.

`SqliteFile` remembers which file a SQLite engine opened (device and inode). Deleting or replacing the
file under a running gateway leaves it writing into an orphan that a restart never sees (every job
accepted since would be lost), so every transaction checks the file first and is refused when it changed.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from asyncpg import exceptions as pg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database cannot be used now; the request may be retried later."""


class DatabaseFileLost(DatabaseUnavailable):
    """The SQLite file the gateway opened was deleted or replaced while it ran."""


#: asyncpg's own errors for a connection that failed, closed or was refused (raised as they are when the
#: pool connects; wrapped in SQLAlchemy's DBAPIError during a statement).
DRIVER_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pg.PostgresConnectionError,  # connection failures, "the database system is starting up"
    pg.ConnectionDoesNotExistError,
    pg.InterfaceError,  # e.g. "connection is closed"
    pg.AdminShutdownError,
    pg.CannotConnectNowError,
    pg.TooManyConnectionsError,
)
#: SQLite's primary result codes that say "not now": BUSY, LOCKED, IOERR, FULL, CANTOPEN.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 13, 14})


def is_unavailable(error: BaseException) -> bool:
    """Does `error` mean the database is unreachable (retry later) rather than a bug?"""
    if isinstance(error, DatabaseUnavailable | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # TimeoutError: the pool had no connection to give within pool_timeout
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error.orig, sqlite3.Error):
            # Locked, unopenable, I/O errors, a full disk: not "no such table" (a deployment error).
            return (getattr(error.orig, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_UNAVAILABLE
        if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True  # Postgres: connection errors, a server shutting down, a statement timeout
        return isinstance(error.orig, (*DRIVER_CONNECTION_ERRORS, OSError))
    if isinstance(error, DRIVER_CONNECTION_ERRORS):
        return True
    # A connect that failed below SQLAlchemy's wrapping (refused, reset, DNS, timeout): the socket's
    # error, raised from the driver while the pool connected.
    return isinstance(error, OSError) and _raised_by_the_driver(error)


def _raised_by_the_driver(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if module.startswith(("asyncpg.", "sqlalchemy.pool", "aiosqlite")):
            return True
        traceback = traceback.tb_next
    return False


@dataclass
class SqliteFile:
    """The file a SQLite engine opened, and whether it is still the one at its path."""

    path: Path
    device: int
    inode: int
    _reported: bool = field(default=False, repr=False)

    @classmethod
    def of(cls, path: Path) -> SqliteFile:
        stat = path.stat()
        return cls(path=path, device=stat.st_dev, inode=stat.st_ino)

    def problem(self) -> str | None:
        """Why the file at `path` is no longer the one opened, or None while it is."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return f"the SQLite database file {self.path} was deleted while the gateway ran"
        except OSError as error:
            return f"the SQLite database file {self.path} cannot be checked: {error.strerror}"
        if (stat.st_dev, stat.st_ino) != (self.device, self.inode):
            return f"the SQLite database file {self.path} was replaced by another file while the gateway ran"
        return None

    def check(self) -> None:
        """Raise DatabaseFileLost when the file changed (logged loudly, once per loss)."""
        reason = self.problem()
        if reason is None:
            self._reported = False  # put back: transactions go on
            return
        if not self._reported:
            self._reported = True
            log.critical(
                "%s: refusing every transaction (writing on would lose the work at the next restart). "
                "Put the file back or restart the gateway on the right database.",
                reason,
            )
        raise DatabaseFileLost(reason)
