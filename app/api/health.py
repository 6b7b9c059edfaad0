"""Operational endpoints: `/healthz`, `/readyz`, `/metrics` (Prometheus) and `GET /v1/admin/stats`.

The same router is served by worker processes on their health port (`wan-gateway worker --health-port`).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.auth import AdminDep
from app.api.deps import MetricsDep, ReadinessDep
from app.api.problems import problem_responses
from app.api.routing import StrictRoute
from app.db.base import utcnow
from app.ops.metrics import CONTENT_TYPE

router = APIRouter(tags=["ops"], route_class=StrictRoute)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database, storage and the loops' heartbeats",
    responses={503: {"description": "A dependency is not ready"}},
)
async def readyz(readiness: ReadinessDep) -> JSONResponse:
    ok, checks = await readiness.check()
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics: queue depth, upstream tasks in flight, oldest due job, deliveries",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}, **problem_responses(401, 403)},
)
async def prometheus_metrics(metrics: MetricsDep, _: AdminDep) -> Response:
    return Response(await metrics.render(), media_type=CONTENT_TYPE)


class StatsOut(BaseModel):
    object: Literal["stats"] = "stats"
    at: datetime
    jobs_by_status: dict[str, int] = Field(description="Jobs per status.")
    upstream_in_flight: dict[str, int] = Field(
        description="Upstream tasks PENDING/RUNNING (or being created) per model family; capped by "
        "UPSTREAM_MAX_INFLIGHT."
    )
    due_jobs: int = Field(description="Jobs whose next step (submit, poll, store) is due now.")
    oldest_due_age_s: float | None = Field(description="How late the oldest due job is; null when none.")
    leased_jobs: int = Field(description="Jobs a worker holds right now.")
    deliveries_by_status: dict[str, int] = Field(description="Webhook deliveries per status.")
    oldest_due_delivery_age_s: float | None = Field(description="How late the oldest due delivery is.")


@router.get(
    "/v1/admin/stats",
    summary="Queue figures as JSON (the same as /metrics)",
    responses=problem_responses(401, 403),
)
async def admin_stats(metrics: MetricsDep, _: AdminDep) -> StatsOut:
    now = utcnow()
    return StatsOut(at=now, **asdict(await metrics.queue(now)))
