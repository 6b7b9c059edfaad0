"""The job state table: the only moves a job can make."""

from __future__ import annotations

import pytest

from app.jobs.states import InvalidTransition, JobStatus, can_transition, check_transition

S = JobStatus


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.QUEUED, S.SUBMITTED),
        (S.SUBMITTED, S.RUNNING),
        (S.SUBMITTED, S.STORING),
        (S.RUNNING, S.STORING),
        (S.STORING, S.SUCCEEDED),
        (S.QUEUED, S.CANCELED),
        (S.SUBMITTED, S.CANCELED),
        (S.RUNNING, S.FAILED),
        (S.STORING, S.FAILED),
    ],
)
def test_allowed(current: JobStatus, target: JobStatus) -> None:
    assert can_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.QUEUED, S.SUCCEEDED),
        (S.QUEUED, S.STORING),
        (S.STORING, S.CANCELED),
        (S.SUCCEEDED, S.FAILED),
        (S.FAILED, S.QUEUED),
        (S.CANCELED, S.SUBMITTED),
        (S.RUNNING, S.SUBMITTED),
    ],
)
def test_refused(current: JobStatus, target: JobStatus) -> None:
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition):
        check_transition(current, target)


def test_terminal_states_go_nowhere() -> None:
    for terminal in (S.SUCCEEDED, S.FAILED, S.CANCELED):
        assert terminal.terminal
        assert not any(can_transition(terminal, t) for t in S)


def test_a_follower_may_succeed_straight_from_queued() -> None:
    """A follower takes the result of the identical job it waited for; nothing else skips the pipeline."""
    assert can_transition(S.QUEUED, S.SUCCEEDED, follower=True)
    check_transition(S.QUEUED, S.FAILED, follower=True)
    assert not can_transition(S.QUEUED, S.SUCCEEDED)
    assert not can_transition(S.CANCELED, S.SUCCEEDED, follower=True)
    assert not can_transition(S.QUEUED, S.STORING, follower=True)
