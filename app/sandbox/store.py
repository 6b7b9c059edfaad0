"""The sandbox's task table: a small SQLite file (WAL) shared by every emulator process pointing at it.

A row holds only what was decided at create time (planned timestamps, outcome, output geometry); the
task's state is computed from it on every read (lifecycle.py), so nothing needs updating as time passes
and a restarted or second process sees exactly the same tasks. Each operation is one short transaction,
run in a worker thread so the event loop never waits on the file lock.

Every row belongs to one emulated account (`account`, "1", "2", …: the position of the key that created
it): lookups, lists, submit RPS and running slots are all per account, as DashScope's are per main account.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from app.providers.base import TaskState

_T = TypeVar("_T")

#: (start_at, end_at) of a task that holds or will hold a running slot; end None = never frees it.
Slot = tuple[float, float | None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id     TEXT PRIMARY KEY,
    model       TEXT NOT NULL,
    family      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    created_at  REAL NOT NULL,
    start_at    REAL NOT NULL,
    end_at      REAL,
    canceled_at REAL,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    account     TEXT NOT NULL DEFAULT '1'
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at);
"""

#: Run after `_SCHEMA`, once the `account` column exists (a state file of an older sandbox gets it, its
#: tasks going to account 1, the only one there was).
_INDEXES = """
CREATE INDEX IF NOT EXISTS tasks_account_family_end ON tasks (account, family, end_at);
DROP INDEX IF EXISTS tasks_family_end;
"""


@dataclass(frozen=True)
class TaskDetail:
    """What the responses need besides the timeline, fixed at create time."""

    endpoint: str
    resolution: str
    duration: int
    width: int
    height: int
    has_audio: bool
    prompt: str | None
    prompt_extend: bool
    code: str | None = None  # FAILED outcome
    message: str | None = None
    api_key_id: str = ""  # which key created it, as list rows show
    # Faults on what a SUCCEEDED task serves (faults.py): another length or size, a damaged file.
    served_duration: int | None = None
    served_width: int | None = None
    served_height: int | None = None
    corrupt: bool = False
    nul_text: bool = False  # the `nul` fault (faults.Outcome.nul_text)
    #: sha256 of the input images the clip shows (clips.SourceImages): the reference image, or the first
    #: and last frames; None: an image the sandbox could not see (or a task of an older sandbox).
    images: list[str] | None = None


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    model: str
    family: str
    request_id: str
    created_at: float
    start_at: float
    end_at: float | None  # None: a `stuck` task, RUNNING forever
    canceled_at: float | None
    outcome: TaskState  # SUCCEEDED, FAILED or UNKNOWN, reached at end_at
    detail: TaskDetail
    account: str = "1"  # the emulated account that owns it (the key's position in SandboxConfig.api_keys)


#: Unknown keys (written by another version of the sandbox) are skipped when a row is read back.
_DETAIL_FIELDS = frozenset(field.name for field in fields(TaskDetail))


class RateLimited(Exception):
    """More creates of one family by one account in the last second than its submit RPS allows."""


def _row_to_record(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(
        task_id=row["task_id"],
        model=row["model"],
        family=row["family"],
        request_id=row["request_id"],
        created_at=row["created_at"],
        start_at=row["start_at"],
        end_at=row["end_at"],
        canceled_at=row["canceled_at"],
        outcome=TaskState(row["outcome"]),
        detail=TaskDetail(**{k: v for k, v in json.loads(row["detail"]).items() if k in _DETAIL_FIELDS}),
        account=row["account"],
    )


class TaskStore:
    """Async facade over one sqlite3 connection (opened lazily, guarded by a lock)."""

    def __init__(self, path: Path, *, retention_s: float) -> None:
        self.path = path
        self._retention_s = retention_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(tasks)")}
            if "account" not in columns:
                conn.execute("ALTER TABLE tasks ADD COLUMN account TEXT NOT NULL DEFAULT '1'")
            conn.executescript(_INDEXES)
            self._conn = conn
        return self._conn

    async def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        def locked() -> _T:
            with self._lock:
                return operation(self._connect())

        return await asyncio.to_thread(locked)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def insert(
        self,
        make: Callable[[Sequence[Slot]], TaskRecord],
        *,
        account: str,
        family: str,
        now: float,
        submit_rps: float | None,
        with_slots: bool,
    ) -> TaskRecord:
        """Insert the record `make` builds from the account's busy slots of the family, in one write
        transaction, so that concurrent creates (even from other processes) see each other's schedule
        and RPS."""

        def operation(conn: sqlite3.Connection) -> TaskRecord:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM tasks WHERE created_at < ?", (now - 2 * self._retention_s,))
                if submit_rps is not None:
                    (recent,) = conn.execute(
                        "SELECT COUNT(*) FROM tasks WHERE account = ? AND family = ? AND created_at > ?",
                        (account, family, now - 1.0),
                    ).fetchone()
                    if recent >= submit_rps:
                        raise RateLimited(family)
                slots: list[Slot] = []
                if with_slots:
                    slots = [
                        (row["start_at"], row["end_at"])
                        for row in conn.execute(
                            "SELECT start_at, end_at FROM tasks WHERE account = ? AND family = ?"
                            " AND canceled_at IS NULL AND (end_at IS NULL OR end_at > ?)",
                            (account, family, now),
                        )
                    ]
                record = make(slots)
                conn.execute(
                    "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.task_id,
                        record.model,
                        record.family,
                        record.request_id,
                        record.created_at,
                        record.start_at,
                        record.end_at,
                        record.canceled_at,
                        record.outcome.value,
                        json.dumps(asdict(record.detail)),
                        record.account,
                    ),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return record

        return await self._run(operation)

    async def get(self, task_id: str, *, account: str | None) -> TaskRecord | None:
        """The account's task (any account's: None); another account's is None, as if it did not exist
        (§3.5)."""

        def operation(conn: sqlite3.Connection) -> TaskRecord | None:
            row = conn.execute(
                "SELECT * FROM tasks WHERE task_id = ? AND (? IS NULL OR account = ?)",
                (task_id, account, account),
            ).fetchone()
            return None if row is None else _row_to_record(row)

        return await self._run(operation)

    async def cancel(self, task_id: str, *, account: str, now: float) -> bool:
        """Cancel the account's task if still PENDING at `now` (not started, not canceled, not expired);
        one atomic UPDATE."""

        def operation(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE tasks SET canceled_at = ? WHERE task_id = ? AND account = ? AND canceled_at IS NULL"
                " AND start_at > ? AND created_at > ?",
                (now, task_id, account, now, now - self._retention_s),
            )
            return cursor.rowcount == 1

        return await self._run(operation)

    async def created_between(
        self,
        since: float,
        until: float,
        *,
        account: str | None,
        model: str | None = None,
        task_id: str | None = None,
    ) -> list[TaskRecord]:
        """Tasks created in [since, until], newest first: the account's, or every account's (None)."""

        def operation(conn: sqlite3.Connection) -> list[TaskRecord]:
            sql = "SELECT * FROM tasks WHERE created_at >= ? AND created_at <= ?"
            params: list[Any] = [since, until]
            if account is not None:
                sql += " AND account = ?"
                params.append(account)
            if model:
                sql += " AND model = ?"
                params.append(model)
            if task_id:
                sql += " AND task_id = ?"
                params.append(task_id)
            rows = conn.execute(sql + " ORDER BY created_at DESC", params).fetchall()
            return [_row_to_record(row) for row in rows]

        return await self._run(operation)

    async def slots_since(self, since: float) -> list[tuple[str, str, Slot]]:
        """(account, family, slot) of every task holding or due to hold a running slot after `since`."""

        def operation(conn: sqlite3.Connection) -> list[tuple[str, str, Slot]]:
            rows = conn.execute(
                "SELECT account, family, start_at, end_at FROM tasks WHERE canceled_at IS NULL"
                " AND (end_at IS NULL OR end_at > ?)",
                (since,),
            ).fetchall()
            return [(row["account"], row["family"], (row["start_at"], row["end_at"])) for row in rows]

        return await self._run(operation)
