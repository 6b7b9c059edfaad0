"""What `/readyz` reports: the database answers, storage is writable and has room for videos
(`storage/space.py`: free space on the staging filesystem, the last copy that ran out of it), and each
loop's heartbeat is fresh; in an account pool, which accounts are out of rotation (providers/health.py,
as this process has seen them: `degraded` while one is left, not ready only when none is).

A loop that crashed or was stopped reports `stopped`; one whose last turn is older than a few of its idle
waits reports `stale` (stuck). Processes that run no loops (an API with `WORKERS_ENABLED=false`) report
them `disabled`, which is ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import text

from app.db.availability import DatabaseUnavailable, is_unavailable
from app.db.base import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.providers.health import AccountHealth
    from app.runner import LoopRunner
    from app.storage.base import Storage
    from app.storage.space import StorageSpace

log = logging.getLogger(__name__)
#: A loop turns at least once per idle wait; this many missed turns (and at least this long) is stale.
STALE_TURNS = 3
STALE_MIN_S = 15.0


class Heartbeat(Protocol):
    """What readiness and the metrics read of a loop (`ClaimLoop` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def last_tick_at(self) -> datetime | None: ...

    @property
    def idle_max_s(self) -> float: ...


def _database_problem(exc: Exception) -> str:
    if isinstance(exc, DatabaseUnavailable):
        return f"unavailable: {exc}"  # our own words, e.g. which SQLite file was deleted
    if is_unavailable(exc):
        return f"unavailable: {type(exc).__name__}"  # a driver's message may name hosts and users
    return f"error: {type(exc).__name__}"


class Readiness:
    """`/readyz` of one process: its database, its storage, and the loops it runs (`runner`, None when it
    runs none), each loop under its check name (`job_poller`, `webhook_dispatcher`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        space: StorageSpace,
        *,
        loops: Mapping[str, Heartbeat],
        runner: LoopRunner | None,
        accounts: AccountHealth | None = None,
    ) -> None:
        self._sessions = sessions
        self._storage = storage
        self._space = space
        self._loops = dict(loops)
        self._runner = runner
        self._accounts = accounts

    def _loop_state(self, loop: Heartbeat) -> str:
        if self._runner is None:
            return "disabled"
        if not self._runner.running(loop.name):
            return "stopped"  # crashed (logged) or shut down
        last = loop.last_tick_at
        stale_after = max(STALE_MIN_S, STALE_TURNS * loop.idle_max_s)
        return "ok" if last is not None and (utcnow() - last).total_seconds() < stale_after else "stale"

    async def check(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            async with self._sessions() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            log.warning("readiness: database: %s", exc)
            checks["database"] = _database_problem(exc)
        try:
            # Room first: on a full disk the write below fails too, and this says why.
            room = await asyncio.to_thread(self._space.problem)
            if room is not None:
                log.warning("readiness: storage %s: %s", self._storage.url, room)
                checks["storage"] = f"error: {room}"
            else:
                await self._storage.check()
                checks["storage"] = "ok"
        except Exception as exc:
            log.warning("readiness: storage: %s", exc)
            checks["storage"] = f"error: {type(exc).__name__}"
        for check, loop in self._loops.items():
            checks[check] = self._loop_state(loop)
        ready = all(v in ("ok", "disabled") for v in checks.values())
        if self._accounts is not None and self._accounts.names:
            await self._accounts.refresh(force=True)  # what every process learnt, not only this one
            out = self._accounts.out()
            if not out:
                checks["upstream_accounts"] = "ok"
            else:
                named = ", ".join(f"{name} ({why})" for name, why in sorted(out.items()))
                # A pool with an account left still serves: not ready only when every account is refused.
                every = len(out) == len(self._accounts.names)
                checks["upstream_accounts"] = f"{'error' if every else 'degraded'}: refused: {named}"
                ready = ready and not every
        return ready, checks
