"""What `/readyz` reports: the database answers, storage is writable and has room for videos
(`storage/space.py`: free space on the staging filesystem, the last copy that ran out of it), and each
loop's heartbeat is fresh.

A loop that crashed or was stopped reports `stopped`; one whose last turn is older than a few of its idle
waits reports `stale` (stuck). Processes that run no loops (an API with `WORKERS_ENABLED=false`) report
them `disabled`, which is ready.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from app.db.availability import DatabaseUnavailable, is_unavailable
from app.db.base import utcnow

if TYPE_CHECKING:
    from app.lifespan import Gateway
    from app.loops import ClaimLoop

log = logging.getLogger(__name__)
#: A loop turns at least once per idle wait; this many missed turns (and at least this long) is stale.
STALE_TURNS = 3
STALE_MIN_S = 15.0


def _loop_state(gateway: Gateway, loop: ClaimLoop[Any]) -> str:
    if not gateway.loops:
        return "disabled"
    task = next((t for t in gateway.loops if t.get_name() == loop.name), None)
    if task is None or task.done():
        return "stopped"  # crashed (logged) or shut down
    last = loop.last_tick_at
    stale_after = max(STALE_MIN_S, STALE_TURNS * loop.idle_max_s)
    return "ok" if last is not None and (utcnow() - last).total_seconds() < stale_after else "stale"


def _database_problem(exc: Exception) -> str:
    if isinstance(exc, DatabaseUnavailable):
        return f"unavailable: {exc}"  # our own words, e.g. which SQLite file was deleted
    if is_unavailable(exc):
        return f"unavailable: {type(exc).__name__}"  # a driver's message may name hosts and users
    return f"error: {type(exc).__name__}"


async def readiness(gateway: Gateway) -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    try:
        async with gateway.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("readiness: database: %s", exc)
        checks["database"] = _database_problem(exc)
    try:
        # Room first: on a full disk the write below fails too, and this says why.
        room = await asyncio.to_thread(gateway.space.problem)
        if room is not None:
            log.warning("readiness: storage %s: %s", gateway.storage.url, room)
            checks["storage"] = f"error: {room}"
        else:
            await gateway.storage.check()
            checks["storage"] = "ok"
    except Exception as exc:
        log.warning("readiness: storage: %s", exc)
        checks["storage"] = f"error: {type(exc).__name__}"
    checks["job_poller"] = _loop_state(gateway, gateway.poller)
    checks["webhook_dispatcher"] = _loop_state(gateway, gateway.dispatcher)
    return all(v in ("ok", "disabled") for v in checks.values()), checks
