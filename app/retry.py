"""Retry decisions in one place: reading a server's `Retry-After`, and backoff with jitter.

Used by the DashScope client, the video copy and the job loop (which stores the next attempt time in
the database rather than sleeping, so retries survive restarts).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

#: A server asking for longer than this is capped: the job loop re-checks by then anyway.
MAX_RETRY_AFTER_S = 600.0
MAX_BACKOFF_S = 300.0


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, or `Retry-After` as seconds or an HTTP date; capped; None when absent."""
    value: float | None = None
    if raw_ms := headers.get("retry-after-ms"):
        try:
            value = float(raw_ms) / 1000
        except ValueError:
            value = None
    if value is None and (raw := headers.get("retry-after")):
        try:
            value = float(raw)
        except ValueError:
            try:
                value = email.utils.parsedate_to_datetime(raw).timestamp() - time.time()
            except (TypeError, ValueError):
                value = None
    if value is None:
        return None
    return min(max(value, 0.0), MAX_RETRY_AFTER_S)


def backoff(attempt: int, base: float, retry_after: float | None = None, cap: float = MAX_BACKOFF_S) -> float:
    """Exponential backoff (base · 2^attempt, capped) with up to 25 % jitter, never shorter than the
    server's Retry-After."""
    delay = min(cap, base * 2.0 ** min(attempt, 16))
    delay *= random.uniform(1.0, 1.25)
    return max(delay, retry_after or 0.0)
