"""A tenant's quota limits: the defaults (QUOTA_* settings) or its key's own. `jobs/admission.py`
enforces them when a job is submitted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuotaLimits:
    """0 means no limit."""

    max_active_jobs: int = 0
    submits_per_minute: int = 0
    video_seconds_per_day: int = 0
