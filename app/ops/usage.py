"""Spend: `GET /v1/usage` rows (jobs, billed seconds, amount per group and currency) and the all-time
spend figures `/metrics` shows.

Only finished jobs count, by `finished_at`, with their final cost (`estimated: false`): a succeeded job
what DashScope billed, a failed or canceled one (and a reused or followed one) 0 — counted as a job, no
money. A job whose model the price table does not price has no cost and is left out. Deleted and expired
jobs still count: the money was spent.

Both are summed by the database, grouped: the amount is `cost_micros` (an integer of millionths, so the
sum is exact on SQLite and Postgres alike, turned back into a decimal string here), the billed seconds
`cost.billed_seconds` cast to numeric. The window is one query on `ix_jobs_status_finished_at`; `/metrics`
sums every finished job at each scrape: a scan of the finished jobs, cheap for moderate tables (a daily
rollup would bound it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, Numeric, String, cast, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.cost import from_micros
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
    #: The day (`YYYY-MM-DD`, UTC), model, key name or tenant; None for the jobs of no tenant
    #: (authentication off) and, by key, for the jobs made before they recorded their key.
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
    currency), sorted by group then currency: summed by the database, one row per group comes back."""
    group = {
        "day": _day(session.get_bind().dialect.name),
        "model": Job.model,
        "key": Job.api_key,
        "tenant": Job.owner,
    }[group_by]
    currency = Job.cost["currency"].as_string()
    query = (
        select(group, currency, func.count(), func.sum(_billed_seconds()), func.sum(Job.cost_micros))
        .where(
            Job.status.in_(_FINISHED),
            Job.finished_at >= since,
            Job.finished_at < until,
            *_final_cost(currency),
        )
        .group_by(group, currency)
    )
    if not every_tenant:
        query = query.where(Job.owner.is_(None) if tenant is None else Job.owner == tenant)
    rows = [
        UsageRow(name, str(cur), int(jobs), _decimal(seconds), from_micros(int(micros or 0)))
        for name, cur, jobs, seconds, micros in (await session.execute(query)).all()
    ]
    return sorted(rows, key=lambda row: (row.group is not None, row.group or "", row.currency))


def _day(dialect: str) -> ColumnElement[str]:
    """`finished_at`'s UTC date as `YYYY-MM-DD`, in SQL."""
    if dialect == "postgresql":  # timestamptz: its date in UTC whatever the session's time zone
        return func.to_char(func.timezone("UTC", Job.finished_at), "YYYY-MM-DD", type_=String)
    return func.date(Job.finished_at, type_=String)  # SQLite keeps naive UTC text (db/base.py)


def _billed_seconds() -> ColumnElement[Any]:
    return cast(Job.cost["billed_seconds"].as_string(), Numeric)


def _final_cost(currency: ColumnElement[str | None]) -> list[ColumnElement[bool]]:
    """A job's final cost: priced (`cost_micros`, which the terminal write set), in a currency, and no
    longer an estimate."""
    return [
        Job.cost_micros.is_not(None),
        currency.is_not(None),
        Job.cost["estimated"].as_boolean() == false(),
    ]


def _decimal(value: Any) -> Decimal:
    """A SQL sum as a Decimal (SQLite answers an int or a float, Postgres a Decimal; None: no rows)."""
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


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
        select(Job.owner, Job.model, currency, func.sum(Job.cost_micros), func.sum(_billed_seconds()))
        .where(Job.status.in_(_FINISHED), *_final_cost(currency))
        .group_by(Job.owner, Job.model, currency)
    )
    return capped(
        [
            Spend(
                owner or NO_TENANT, model, str(cur), float(from_micros(int(micros or 0))), float(seconds or 0)
            )
            for owner, model, cur, micros, seconds in (await session.execute(query)).all()
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
