"""When to poll an upstream task next.

DashScope reports no progress or ETA, but tasks of one model, resolution and duration take about as long
as each other. The poller remembers how long recent ones ran upstream (`end_time - submit_time`, both in
DashScope's own clock, so its unstated time zone cancels out) and uses it: while a task is young, polls
back off (`POLL_MIN_INTERVAL_S` × 1.5 per poll, up to `POLL_MAX_INTERVAL_S`), but never past the moment
the task is expected to end; once it is due, every `POLL_MIN_INTERVAL_S`. Until a task of a kind has
ended, tasks of that kind are polled every `POLL_MIN_INTERVAL_S`. Few polls are spent, and a finished task
is noticed within moments — which is what keeps DashScope's few concurrency slots busy.

The estimates live in each worker's memory: they are a hint, learnt again within a few tasks.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: Weight of the newest observation in the moving average.
ALPHA = 0.3
#: Poll this long after the expected end, so a task that ends on time is seen at the first try.
MARGIN_S = 0.25
#: Never schedule two polls of one task closer than this (or POLL_MIN_INTERVAL_S, if smaller).
FLOOR_S = 0.2
#: DashScope's task time format, e.g. `2025-09-01 12:00:00.123`.
UPSTREAM_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def task_kind(model: str, request: dict[str, object] | None) -> str:
    """Tasks expected to take about as long: same model, resolution and duration."""
    request = request or {}
    return f"{model}|{request.get('resolution')}|{request.get('duration')}"


def upstream_run_seconds(submit_time: str | None, end_time: str | None) -> float | None:
    """How long a task took upstream, from DashScope's own timestamps; None when they cannot be read."""
    if not submit_time or not end_time:
        return None
    try:
        # Both in the same (unstated) zone: any fixed one gives the right difference.
        start = datetime.strptime(submit_time, UPSTREAM_TIME_FORMAT).replace(tzinfo=UTC)
        end = datetime.strptime(end_time, UPSTREAM_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    seconds = (end - start).total_seconds()
    return seconds if seconds > 0 else None


class RunTimes:
    """A moving average of upstream run time per kind of task."""

    def __init__(self) -> None:
        self._expected: dict[str, float] = {}

    def observe(self, kind: str, seconds: float) -> None:
        previous = self._expected.get(kind)
        self._expected[kind] = seconds if previous is None else previous + ALPHA * (seconds - previous)

    def expected(self, kind: str) -> float | None:
        return self._expected.get(kind)


def next_poll_delay(
    *, poll_count: int, elapsed_s: float, expected_s: float | None, min_s: float, max_s: float
) -> float:
    """Seconds until the next poll of a task that has run `elapsed_s` and been polled `poll_count` times."""
    if expected_s is None:
        # Nothing known yet about tasks like this one: look every POLL_MIN_INTERVAL_S until the first of
        # them ends (at most UPSTREAM_MAX_INFLIGHT tasks per family are in flight, well within 20 QPS).
        return min_s
    backoff = min(max_s, min_s * 1.5 ** min(poll_count, 20))
    remaining = expected_s - elapsed_s
    if remaining <= 0:
        return min_s  # due: look often
    return max(min(min_s, FLOOR_S), min(backoff, remaining + MARGIN_S))
