"""`GET /v1/usage`: what finished jobs cost, per day, model, key or tenant (architecture §3.1 "Money").

A key sees its tenant's jobs; an admin key (or anyone while authentication is off) sees every tenant's.
`group_by=tenant` is allowed to every key: scoped, a tenant's key gets its one row. `group_by=key` groups
by the name of the key that made each job (`jobs.api_key`; null for jobs made before it was recorded or
with authentication off): a tenant's key sees its tenant's keys.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import PrincipalDep
from app.api.deps import MetricsDep
from app.api.problems import problem_responses
from app.api.routing import StrictRoute
from app.db.base import utcnow
from app.errors import FieldError
from app.ops.usage import UsageRow

router = APIRouter(prefix="/v1", tags=["usage"], route_class=StrictRoute)


class UsageGroup(BaseModel):
    group: str | None = Field(
        description="The day (`YYYY-MM-DD`, UTC, by `finished_at`), the model, the key's name or the "
        "tenant (null: jobs made while authentication was off; for `key`, also jobs made before the "
        "gateway recorded their key)."
    )
    jobs: int = Field(description="Finished jobs, billed or not (a failed or canceled job bills 0).")
    billed_seconds: int | float = Field(description="Seconds of video DashScope billed.")
    amount: str = Field(description="What they cost, a decimal string, in `currency`.", examples=["1.50"])
    currency: str = Field(examples=["CNY"])


class UsageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    object: Literal["usage"] = "usage"
    since: datetime = Field(alias="from", description="Start of the window (inclusive), UTC.")
    until: datetime = Field(alias="to", description="End of the window (exclusive), UTC.")
    group_by: Literal["day", "model", "key", "tenant"]
    data: list[UsageGroup] = Field(description="One row per (group, currency), sorted by group.")


def parse_instant(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 date (midnight UTC) or datetime (UTC when it names no offset)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # overflow: an offset moving year 1 or 9999 out of range
        raise FieldError(
            field, "must be an ISO 8601 date or date-time (2026-12-01, 2026-12-01T08:00:00Z)"
        ) from None


def month_start(end: datetime) -> datetime:
    """The start of the UTC month the exclusive `end` falls in (`to=2026-12-01` → November's)."""
    last = end - timedelta(microseconds=1) if end > datetime.min.replace(tzinfo=UTC) else end
    return datetime.combine(last.date().replace(day=1), time(), UTC)


def _row(row: UsageRow) -> UsageGroup:
    seconds = row.billed_seconds
    return UsageGroup(
        group=row.group,
        jobs=row.jobs,
        billed_seconds=int(seconds) if seconds == seconds.to_integral_value() else float(seconds),
        amount=str(row.amount),
        currency=row.currency,
    )


@router.get(
    "/usage",
    response_model=UsageOut,
    response_model_by_alias=True,
    summary="Spend of finished jobs per day, model, key or tenant",
    responses=problem_responses(401, 422),
)
async def get_usage(
    metrics: MetricsDep,
    caller: PrincipalDep,
    since: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=64,
            description="ISO date or date-time, inclusive (default: the start of the UTC month `to` "
            "falls in: this month).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(alias="to", max_length=64, description="ISO date or date-time, exclusive (default: now)."),
    ] = None,
    group_by: Annotated[
        Literal["day", "model", "key", "tenant"],
        Query(description="`key`: by the name of the key that made each job."),
    ] = "day",
) -> UsageOut:
    """Finished jobs (succeeded, failed, canceled) by `finished_at` in [`from`, `to`), with their final
    cost: what DashScope billed a succeeded job, 0 for the others (counted in `jobs`). Jobs of a model the
    price table does not price are left out. Amounts are exact decimal sums, one row per currency."""
    end = parse_instant(until, "to") or utcnow()
    start = parse_instant(since, "from") or month_start(end)
    if start > end:
        raise FieldError("from", "must not be after `to`")
    rows = await metrics.usage(
        since=start, until=end, group_by=group_by, tenant=caller.tenant, every_tenant=caller.admin
    )
    return UsageOut(since=start, until=end, group_by=group_by, data=[_row(row) for row in rows])
