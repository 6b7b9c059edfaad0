"""A tenant's quota limits: the defaults (QUOTA_* settings) or its key's own. `jobs/admission.py`
enforces them when a job is submitted.

The budget is money, in millionths of the region's currency (the currency of the jobs' `cost`, which is
DASHSCOPE_REGION's): what the tenant's jobs spent in the current period plus what its unfinished jobs
have reserved may not pass it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

BudgetPeriod = Literal["day", "month", "total"]
BUDGET_PERIODS: tuple[str, ...] = get_args(BudgetPeriod)


@dataclass(frozen=True)
class QuotaLimits:
    """0 means no limit."""

    max_active_jobs: int = 0
    submits_per_minute: int = 0
    video_seconds_per_day: int = 0
    #: Millionths of the region's currency (0: no budget).
    budget_micros: int = 0
    budget_period: BudgetPeriod = "month"


def period_bounds(period: BudgetPeriod, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(start, reset) of the budget period holding `now`, in UTC: a day from midnight, a month from its
    1st; `total` has neither (all time)."""
    if period == "total":
        return None, None
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight, midnight + timedelta(days=1)
    first = midnight.replace(day=1)
    following = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )
    return first, following
