"""Poll pacing: back off while a task is young, poll at its expected end, then often."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.jobs.pacing import RunTimes, next_poll_delay, running_since, task_kind, upstream_seconds


def test_without_an_estimate_polls_every_minimum_interval() -> None:
    delays = [
        next_poll_delay(poll_count=n, elapsed_s=2 * n, expected_s=None, min_s=2, max_s=15) for n in range(8)
    ]
    assert delays == [2] * 8


def test_a_young_task_is_polled_with_backoff_but_never_past_its_expected_end() -> None:
    delays = [next_poll_delay(poll_count=n, elapsed_s=0, expected_s=600, min_s=2, max_s=15) for n in range(8)]
    assert delays[:3] == [2, 3, 4.5]
    assert delays[-1] == 15


def test_the_next_poll_lands_just_after_the_expected_end() -> None:
    # 25 s into a task expected to take 30 s: not 15 s later (backoff), but at 30.1 s.
    assert next_poll_delay(poll_count=6, elapsed_s=25, expected_s=30, min_s=2, max_s=15) == pytest.approx(5.1)
    # Young task: the backoff is shorter than the time left.
    assert next_poll_delay(poll_count=0, elapsed_s=0, expected_s=30, min_s=2, max_s=15) == 2


def test_an_overdue_task_is_polled_again_soon_then_every_minimum_interval() -> None:
    """Overdue by 0.1 s (the expected-end poll) → again 0.2 s later (the floor), not 2 s: a task that
    ends a moment late frees its slot within moments. Further overdue, the wait grows to the minimum."""
    elapsed, polls = 30.1, []
    while elapsed < 45:
        delay = next_poll_delay(poll_count=9, elapsed_s=elapsed, expected_s=30, min_s=2, max_s=15)
        polls.append(round(delay, 3))
        elapsed += delay
    assert polls[:4] == [0.2, 0.2, 0.25, 0.375], polls
    assert polls[-1] == 2 and len(polls) < 16, polls  # no more polls than at 2 s steps over those 15 s


def test_run_time_comes_from_dashscopes_own_timestamps() -> None:
    assert upstream_seconds("2026-11-21 10:00:00.000", "2026-11-21 10:00:31.500") == 31.5
    assert upstream_seconds(None, "2026-11-21 10:00:31.500") is None
    assert upstream_seconds("yesterday", "today") is None


def test_the_start_of_running_is_moved_onto_our_clock() -> None:
    got_id_at = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    # Queued 40 s upstream (DashScope's clock is 8 h ahead of ours: it does not matter).
    started = running_since(got_id_at, "2026-11-21 20:00:00.000", "2026-11-21 20:00:40.000")
    assert started == got_id_at + timedelta(seconds=40)
    assert running_since(got_id_at, "2026-11-21 20:00:00.000", None) is None  # still PENDING
    assert running_since(None, "2026-11-21 20:00:00.000", "2026-11-21 20:00:40.000") is None


def test_estimates_are_per_kind_and_follow_recent_tasks() -> None:
    times = RunTimes()
    fast = task_kind("wan2.2-i2v-flash", {"resolution": "480P", "duration": 5})
    slow = task_kind("wan2.6-i2v", {"resolution": "1080P", "duration": 15})
    times.observe(fast, 30)
    times.observe(slow, 200)
    assert times.expected(fast) == 30
    times.observe(fast, 40)
    assert 30 < (times.expected(fast) or 0) < 40
    assert times.expected(slow) == 200
    assert times.expected(task_kind("wanx2.1-i2v-plus", None)) is None
