"""Job statuses and the transition table. Pure: no I/O, so every rule is unit-testable on its own."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"  # stored, not yet accepted upstream
    SUBMITTED = "submitted"  # upstream task exists (PENDING)
    RUNNING = "running"  # upstream task RUNNING
    STORING = "storing"  # upstream SUCCEEDED; copying the video into our storage
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
ACTIVE = tuple(s for s in JobStatus if s not in TERMINAL)

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
