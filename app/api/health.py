"""Operational endpoints: `/healthz` (the process answers) and `/readyz` (database, storage, job loop)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import GatewayDep
from app.db.base import utcnow

router = APIRouter(tags=["ops"])
log = logging.getLogger(__name__)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database, storage and the job loop",
    responses={503: {"description": "A dependency is not ready"}},
)
async def readyz(gateway: GatewayDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        async with gateway.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("readiness: database: %s", exc)
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await gateway.storage.check()
        checks["storage"] = "ok"
    except Exception as exc:
        log.warning("readiness: storage: %s", exc)
        checks["storage"] = f"error: {type(exc).__name__}"
    if any(loop.done() for loop in gateway.loops):
        checks["job_loop"] = "stopped"  # crashed (logged) or shut down
    elif gateway.loops:
        last = gateway.poller.last_tick_at
        stale_after = 3 * max(gateway.settings.poll_max_interval_s, 5.0)
        alive = last is not None and (utcnow() - last).total_seconds() < stale_after
        checks["job_loop"] = "ok" if alive else "stale"
    else:
        checks["job_loop"] = "disabled"
    ok = all(v in ("ok", "disabled") for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )
