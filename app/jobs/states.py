"""The job state table: which status a job may move to from which. Pure: no I/O, so every rule is
unit-testable on its own. The statuses themselves are `app/statuses.py`'s (re-exported here)."""

from __future__ import annotations

from app.statuses import ACTIVE, EVENT_TYPES, TERMINAL, TERMINAL_EVENTS, JobStatus, event_type

__all__ = [
    "ACTIVE",
    "EVENT_TYPES",
    "TERMINAL",
    "TERMINAL_EVENTS",
    "InvalidTransition",
    "JobStatus",
    "can_transition",
    "check_transition",
    "event_type",
]

_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.SUBMITTED, JobStatus.FAILED, JobStatus.CANCELED}),
    # A poll can skip RUNNING entirely when the task finished between two polls.
    JobStatus.SUBMITTED: frozenset(
        {JobStatus.RUNNING, JobStatus.STORING, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.RUNNING: frozenset({JobStatus.STORING, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.STORING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


#: A follower (a queued job waiting for an identical running job, never submitted itself) ends the way the
#: job it follows ends: it may become `succeeded` straight from `queued`, with the other job's video.
_FOLLOWER_EXTRA: dict[JobStatus, frozenset[JobStatus]] = {JobStatus.QUEUED: frozenset({JobStatus.SUCCEEDED})}


class InvalidTransition(Exception):
    def __init__(self, current: JobStatus, target: JobStatus) -> None:
        super().__init__(f"a {current} job cannot become {target}")
        self.current = current
        self.target = target


def can_transition(current: JobStatus, target: JobStatus, *, follower: bool = False) -> bool:
    return target in _ALLOWED[current] or (follower and target in _FOLLOWER_EXTRA.get(current, ()))


def check_transition(current: JobStatus, target: JobStatus, *, follower: bool = False) -> None:
    if not can_transition(current, target, follower=follower):
        raise InvalidTransition(current, target)
