"""Admission: a tenant's quota limits (`tenants.quotas.QuotaLimits`) checked against its jobs when one
more is submitted: jobs not yet finished, submissions per minute, and seconds of video per day (a rolling
24 h, counting jobs that can still cost money: not failed, not canceled).

`admit` runs inside the transaction that inserts the job, after taking a per-tenant lock (SQLite's
`BEGIN IMMEDIATE` already serializes writers; Postgres takes an advisory lock), so concurrent submissions
cannot all slip under a limit. A refusal is a 429 with `Retry-After` and `RateLimit-*` headers.

The budget (money) is checked the same way, and is a 402 `budget_exceeded`: the new job's estimate must
fit the limit less what the tenant spent in the period (`cost_micros` of its jobs that finished since
the period's start: what was billed, 0 for what was not) and what it has reserved (`cost_micros` of its
unfinished jobs: their estimates). No reservation row exists: a job's own cost columns are its
reservation until its terminal compare-and-set (`transitions.py`) replaces them with the billed amount
or 0, which settles or releases it once, whatever crashes or replicas do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.cost import from_micros
from app.db.locks import LockSpace, xact_lock
from app.errors import AppError
from app.jobs.models import Job
from app.jobs.states import JobStatus
from app.tenants.quotas import QuotaLimits, period_bounds

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
_FINISHED = [s for s in JobStatus if s.terminal]
_NOT_BILLED = [JobStatus.FAILED, JobStatus.CANCELED]
#: When an active-jobs refusal can be retried is unknowable; this is a polite guess.
ACTIVE_RETRY_S = 10


class QuotaExceeded(AppError):
    status = 429
    code = "quota_exceeded"
    title = "Quota exceeded"


class BudgetExceeded(AppError):
    status = 402
    code = "budget_exceeded"
    title = "Budget exceeded"


@dataclass(frozen=True)
class Charge:
    """The new job's estimate (`cost_micros`, `cost.currency`), what its budget reserves."""

    micros: int
    currency: str


@dataclass(frozen=True)
class Window:
    """The per-minute window after an admitted submission, for `RateLimit-*` headers."""

    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.remaining, 0)),
            "RateLimit-Reset": str(max(self.reset_s, 0)),
            "RateLimit-Policy": f"{self.limit};w=60",
        }


def _refuse(message: str, *, limit: int, retry_s: float, window_s: int, which: str) -> QuotaExceeded:
    retry = max(1, math.ceil(retry_s))
    return QuotaExceeded(
        message,
        headers={
            "Retry-After": str(retry),
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(retry),
            "RateLimit-Policy": f"{limit};w={window_s}",
        },
        extra={"quota": which, "limit": limit, "retry_after_s": retry},
    )


async def admit(
    session: AsyncSession,
    tenant: str,
    limits: QuotaLimits,
    video_seconds: float,
    now: datetime,
    charge: Charge | None = None,
) -> Window | None:
    """Raise QuotaExceeded if one more job of `video_seconds` breaks a limit, BudgetExceeded if its
    `charge` does not fit the budget; else the minute window."""
    await xact_lock(session, LockSpace.TENANT_QUOTA, tenant)
    mine = Job.owner == tenant

    if limits.max_active_jobs:
        active = await session.scalar(select(func.count()).where(mine, Job.status.not_in(_FINISHED)))
        if (active or 0) >= limits.max_active_jobs:
            raise _refuse(
                f"this key has {active} jobs not yet finished; the limit is {limits.max_active_jobs}",
                limit=limits.max_active_jobs,
                retry_s=ACTIVE_RETRY_S,
                window_s=0,
                which="max_active_jobs",
            )

    window: Window | None = None
    if limits.submits_per_minute:
        recent = list(
            (
                await session.scalars(
                    select(Job.created_at).where(mine, Job.created_at > now - MINUTE).order_by(Job.created_at)
                )
            ).all()
        )
        if len(recent) >= limits.submits_per_minute:
            # The submission that must leave the window for one more to fit.
            frees_at = recent[len(recent) - limits.submits_per_minute] + MINUTE
            raise _refuse(
                f"this key made {len(recent)} submissions in the last minute; the limit is "
                f"{limits.submits_per_minute} per minute",
                limit=limits.submits_per_minute,
                retry_s=(frees_at - now).total_seconds(),
                window_s=60,
                which="submits_per_minute",
            )
        oldest = recent[0] if recent else now
        window = Window(
            limit=limits.submits_per_minute,
            remaining=limits.submits_per_minute - len(recent) - 1,
            reset_s=math.ceil((oldest + MINUTE - now).total_seconds()),
        )

    if limits.video_seconds_per_day:
        billable = (mine, Job.created_at > now - DAY, Job.status.not_in(_NOT_BILLED))
        used = float(
            await session.scalar(select(func.coalesce(func.sum(Job.video_seconds), 0.0)).where(*billable))
            or 0.0
        )
        budget = limits.video_seconds_per_day
        if used + video_seconds > budget:
            # Walk the window oldest first until enough seconds have left it (only when refusing).
            rows = (
                await session.execute(
                    select(Job.created_at, Job.video_seconds).where(*billable).order_by(Job.created_at)
                )
            ).all()
            freed, retry_s = 0.0, DAY.total_seconds()
            for created_at, seconds in rows:
                freed += seconds or 0.0
                if used - freed + video_seconds <= budget:
                    retry_s = (created_at + DAY - now).total_seconds()
                    break
            raise _refuse(
                f"this key has used {used:g} of its {budget} video-seconds in the last 24 h; this job "
                f"needs {video_seconds:g}",
                limit=budget,
                retry_s=retry_s,
                window_s=86400,
                which="video_seconds_per_day",
            )
    if limits.budget_micros and charge is not None and charge.micros > 0:
        await _within_budget(session, tenant, limits, charge, now)
    return window


async def _within_budget(
    session: AsyncSession, tenant: str, limits: QuotaLimits, charge: Charge, now: datetime
) -> None:
    start, resets_at = period_bounds(limits.budget_period, now)
    mine = Job.owner == tenant
    finished = [mine, Job.status.in_(_FINISHED)]
    if start is not None:
        finished.append(Job.finished_at >= start)
    spent = int(
        await session.scalar(select(func.coalesce(func.sum(Job.cost_micros), 0)).where(*finished)) or 0
    )
    reserved = int(
        await session.scalar(
            select(func.coalesce(func.sum(Job.cost_micros), 0)).where(mine, Job.status.not_in(_FINISHED))
        )
        or 0
    )
    limit = limits.budget_micros
    if spent + reserved + charge.micros <= limit:
        return
    money = {
        "limit": str(from_micros(limit)),
        "spent": str(from_micros(spent)),
        "reserved": str(from_micros(reserved)),
        "estimate": str(from_micros(charge.micros)),
        "currency": charge.currency,
        "period": limits.budget_period,
    }
    extra: dict[str, Any] = {"quota": "budget", **money}
    when = ""
    if resets_at is not None:
        extra["resets_at"] = resets_at.isoformat().replace("+00:00", "Z")
        when = f"; it resets at {extra['resets_at']}"
    per = {"day": "daily", "month": "monthly", "total": "total"}[limits.budget_period]
    raise BudgetExceeded(
        f"this job's estimate of {money['estimate']} {charge.currency} does not fit this key's {per} "
        f"budget of {money['limit']} {charge.currency}: {money['spent']} spent and {money['reserved']} "
        f"reserved by unfinished jobs{when}",
        extra=extra,
    )
