"""When to poll an upstream task next.

DashScope reports no progress or ETA, but tasks of one model, resolution and duration run about as long
as each other. The poller remembers how long recent ones ran (`end_time - scheduled_time`: RUNNING only,
so time spent queued for a slot does not skew it; both in DashScope's own clock, so its unstated time zone
cancels out). A task's start on our clock is its `scheduled_time` shifted by the gap between its
`submit_time` and the moment we got its id. While a RUNNING task is young, polls
back off (`POLL_MIN_INTERVAL_S` × 1.5 per poll, up to `POLL_MAX_INTERVAL_S`), but never past the moment
the task is expected to end (`MARGIN_S` after it); a task still running then is looked at again soon —
half the time it is overdue, at least `FLOOR_S` —, backing off to every `POLL_MIN_INTERVAL_S`. A task
still PENDING, or of a kind never seen to end, is polled every `POLL_MIN_INTERVAL_S`. Few polls are
spent, and a finished task is noticed within moments — which is what keeps DashScope's few slots busy.

The estimates live in each worker's memory: they are a hint, learnt again within a few tasks. What
clients see (`progress`, `eta`, `openai-poll-after-ms`) is learnt from the database instead, so every
process agrees: `estimates.py`, with this module's `mean_run_s` and `typical_run_s`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

#: Weight of the newest observation in the moving average.
ALPHA = 0.3
#: Poll this long after the expected end, so a task that ends on time is seen at the first try. Small:
#: a poll that comes a moment early costs only a re-poll `FLOOR_S` later (see `OVERDUE_SHARE`).
MARGIN_S = 0.1
#: An overdue task is polled again after this share of the time it is overdue (between FLOOR_S and
#: POLL_MIN_INTERVAL_S): a task ending just after its expected end is seen within moments, instead of
#: one POLL_MIN_INTERVAL_S (2 s) later, while one far overdue settles to every POLL_MIN_INTERVAL_S.
#: That re-poll once cost 2 s of an upstream slot per early poll (bench/capacity.py, issue 12).
OVERDUE_SHARE = 0.5
#: Never schedule two polls of one task closer than this (or POLL_MIN_INTERVAL_S, if smaller).
FLOOR_S = 0.2
#: DashScope's task time format, e.g. `2025-09-01 12:00:00.123`.
UPSTREAM_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def task_kind(model: str, request: dict[str, object] | None) -> str:
    """Tasks expected to take about as long: same model, resolution and duration."""
    request = request or {}
    return f"{model}|{request.get('resolution')}|{request.get('duration')}"


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        # Every DashScope time is in the same (unstated) zone: any fixed one gives right differences.
        return datetime.strptime(value, UPSTREAM_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def upstream_seconds(start: str | None, end: str | None) -> float | None:
    """Seconds between two DashScope timestamps; None when they cannot be read or are out of order."""
    a, b = _parse(start), _parse(end)
    if a is None or b is None or b <= a:
        return None
    return (b - a).total_seconds()


def running_since(
    submitted_at: datetime | None, submit_time: str | None, scheduled_time: str | None
) -> datetime | None:
    """When the task started RUNNING, on our clock; None while it is PENDING (or times are missing)."""
    queued = upstream_seconds(submit_time, scheduled_time)
    if submitted_at is None or not scheduled_time:
        return None
    if queued is None:
        # Started the instant it was submitted, or the times are unreadable: the submit is the best guess.
        return submitted_at if _parse(scheduled_time) is not None else None
    return submitted_at + timedelta(seconds=queued)


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
        # Due: look again soon (the slot is likely free by now), less soon the later it runs.
        return max(min(min_s, FLOOR_S), min(min_s, OVERDUE_SHARE * -remaining))
    return max(min(min_s, FLOOR_S), min(backoff, remaining + MARGIN_S))


# --- clients' polls ------------------------------------------------------------------------------------
#: How many recent finished jobs of a kind the client-facing estimate averages.
HISTORY_JOBS = 20
#: Rough DashScope run time when no job of the kind has finished yet: a minute plus 12 s per video second.
_TYPICAL_BASE_S, _TYPICAL_PER_VIDEO_S = 60.0, 12.0


def typical_run_s(request: dict[str, object] | None) -> float:
    """A guess at a job's run time from its duration alone (the `progress` estimate uses it too)."""
    duration = (request or {}).get("duration")
    seconds = float(duration) if isinstance(duration, int | float) and duration else 5.0
    return _TYPICAL_BASE_S + _TYPICAL_PER_VIDEO_S * seconds


def mean_run_s(
    kind: str, history: list[tuple[str, datetime, datetime]], *, limit: int = HISTORY_JOBS
) -> float | None:
    """Mean seconds from submit to finish of the latest `limit` jobs of `kind` in `history`
    (`(kind, submitted_at, finished_at)`, newest first); None when none is of that kind."""
    runs = [(end - start).total_seconds() for k, start, end in history if k == kind and end > start]
    return sum(runs[:limit]) / len(runs[:limit]) if runs else None


#: A client's expected end is the mean run time stretched by this share (runs vary), plus one
#: POLL_MIN_INTERVAL_S (the gateway's own lag in noticing the end).
CLIENT_SLACK = 0.1


def client_expected_end(start: datetime, run_s: float, *, min_s: float) -> datetime:
    """When a job started at `start` (its submit, or now while queued), whose kind runs `run_s` on average,
    is expected to be done, for a polling client. Late rather than early: a client polling on a fixed step
    that arrives just before the end waits a whole further step (the `openai` SDK does), one that arrives
    a little after loses only that little."""
    return start + timedelta(seconds=run_s * (1 + CLIENT_SLACK) + min_s)


def client_poll_after_s(*, now: datetime, expected_end: datetime, min_s: float, max_s: float) -> float:
    """How long a client should wait before asking about a job again (OpenAI's `openai-poll-after-ms`).

    The gateway itself looks at a task at most every `max_s` (POLL_MAX_INTERVAL_S), so asking more often
    than `min_s` learns nothing, and asking less often than `max_s` can leave a finished job unseen. Within
    those bounds the wait divides the time left until `expected_end` into equal steps, so one of the
    client's polls lands on the expected end itself. That matters for the `openai` SDK's `poll` helper: it
    reads the header on its first poll only and keeps that interval for every later one (openai-python
    `resources/videos.py`), so the first answer must already be a step that ends on time; a client that
    reads the header each time gets the same grid. Past the expected end: every `min_s`.
    """
    remaining = (expected_end - now).total_seconds()
    if remaining <= min_s:
        return min_s
    steps = math.ceil(remaining / max_s)
    return max(min_s, remaining / steps)
