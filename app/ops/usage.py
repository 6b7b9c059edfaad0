"""Spend: `GET /v1/usage` rows (jobs, billed seconds, amount per group and currency) and the all-time
spend figures `/metrics` shows.

Only finished jobs count, by `finished_at`, with their final cost (`estimated: false`): a succeeded job
what DashScope billed, a failed or canceled one (and a reused or followed one) 0 — counted as a job, no
money. A job whose model the price table does not price has no cost and is left out. Deleted and expired
jobs still count: the money was spent.

The window's rows are read (one query on `ix_jobs_status_finished_at`) and summed with `Decimal` here, so
amounts are exact on every database. A numeric amount column would let SQL sum them instead.

`/metrics` sums every finished job's cost in SQL at each scrape (JSON fields cast to numeric): a scan of
the finished jobs per scrape, cheap for moderate tables; a numeric column or a daily rollup would bound it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sqlalchemy import Numeric, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job
from app.statuses import TERMINAL

GroupBy = Literal["day", "model", "key", "tenant"]
#: The `tenant` label of the jobs of no tenant (authentication off) in `/metrics`.
NO_TENANT = ""
#: At most this many tenants get a label of their own in `/metrics` (the biggest spenders); the others are
#: summed under OTHER_TENANTS, so a gateway with many tenants keeps a bounded series count.
MAX_TENANT_LABELS = 100
OTHER_TENANTS = "_other"
_FINISHED = [status.value for status in TERMINAL]


@dataclass(frozen=True)
class UsageRow:
    #: The day (`YYYY-MM-DD`, UTC), model or tenant; None for the jobs of no tenant (authentication off).
    group: str | None
    currency: str
    jobs: int
    billed_seconds: Decimal
    amount: Decimal


async def usage(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    group_by: GroupBy,
    tenant: str | None,
    every_tenant: bool,
) -> list[UsageRow]:
    """Rows of the jobs finished in [since, until), of `tenant` unless `every_tenant`, one per (group,
    currency), sorted by group then currency."""
    query = select(Job.finished_at, Job.model, Job.owner, Job.api_key, Job.cost).where(
        Job.status.in_(_FINISHED), Job.finished_at >= since, Job.finished_at < until
    )
    if not every_tenant:
        query = query.where(Job.owner.is_(None) if tenant is None else Job.owner == tenant)
    sums: dict[tuple[str | None, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for finished_at, model, owner, api_key, cost in (await session.execute(query)).all():
        billed = _billed(cost)
        if billed is None:
            continue
        currency, seconds, amount = billed
        group = {"day": finished_at.date().isoformat(), "model": model, "key": api_key}.get(group_by, owner)
        row = sums[(group, currency)]
        row[0] += 1
        row[1] += seconds
        row[2] += amount
    return [
        UsageRow(group, currency, jobs, seconds, amount)
        for (group, currency), (jobs, seconds, amount) in sorted(
            sums.items(), key=lambda item: (item[0][0] is not None, item[0][0] or "", item[0][1])
        )
    ]


def _billed(cost: Any) -> tuple[str, Decimal, Decimal] | None:
    if not isinstance(cost, dict) or cost.get("estimated") is not False:
        return None
    try:
        return str(cost["currency"]), Decimal(str(cost["billed_seconds"])), Decimal(str(cost["amount"]))
    except (KeyError, InvalidOperation):
        return None


@dataclass(frozen=True)
class Spend:
    """All-time spend of one (tenant, model, currency), for `/metrics`."""

    tenant: str
    model: str
    currency: str
    amount: float
    billed_seconds: float


async def spend(session: AsyncSession) -> list[Spend]:
    """Every finished job's final cost summed in SQL per (tenant, model, currency): floats, as Prometheus
    keeps them. Rows are never removed, so each figure only grows (a counter read from the database)."""
    currency = Job.cost["currency"].as_string()
    query = (
        select(
            Job.owner,
            Job.model,
            currency,
            func.sum(cast(Job.cost["amount"].as_string(), Numeric)),
            func.sum(cast(Job.cost["billed_seconds"].as_string(), Numeric)),
        )
        .where(Job.status.in_(_FINISHED), currency.is_not(None))
        .group_by(Job.owner, Job.model, currency)
    )
    return capped(
        [
            Spend(owner or NO_TENANT, model, str(cur), float(amount or 0), float(seconds or 0))
            for owner, model, cur, amount, seconds in (await session.execute(query)).all()
        ]
    )


def capped(rows: list[Spend], limit: int = MAX_TENANT_LABELS) -> list[Spend]:
    """`rows` with at most `limit` tenants of their own (the biggest spenders, in every currency
    summed: a rough rank is enough), the others summed under OTHER_TENANTS; sorted."""
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row.tenant] += row.amount
    kept = set(sorted(totals, key=lambda name: (-totals[name], name))[:limit])
    merged: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        key = (row.tenant if row.tenant in kept else OTHER_TENANTS, row.model, row.currency)
        merged[key][0] += row.amount
        merged[key][1] += row.billed_seconds
    return [Spend(t, m, c, a, s) for (t, m, c), (a, s) in sorted(merged.items())]
