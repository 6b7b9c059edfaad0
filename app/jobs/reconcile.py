"""Reconciling an ambiguous create: which upstream task (if any) did it make? Pure rules, no I/O.

DashScope has no idempotency key, so a create that timed out, got a 5xx, or died with the process may
or may not have made a billable task. The poller lists the model's tasks around the attempt and asks
these rules what to do. The rules never guess when guessing could deliver a stranger's video or pay
twice:

1. A listed task carrying the failed create's own `request_id` is ours (proof).
2. Otherwise, a task whose `orig_prompt` (shown once it has succeeded) equals ours is ours; among
   several, the one created nearest the attempt.
3. A task that cannot be told apart yet (no prompt shown) is adopted only when it has finished, it is
   the only candidate, and no other unresolved create of the same model overlaps the window; else we wait.
4. Only when repeated searches, a grace period after the attempt ended, find no candidate at all is the
   job released to be sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.providers.base import ListedTask, ProviderTask

#: Tolerance between our clock and upstream's when placing a task in an attempt's window.
CLOCK_SKEW = timedelta(seconds=120)


def _parse(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class Attempt:
    """What is known of an ambiguous create (persisted as the job's `create_attempt`)."""

    sent_at: datetime
    answered_at: datetime | None = None  # None: the process died during the create
    request_id: str | None = None
    empty_passes: int = 0  # task-list searches that found no candidate
    first_empty_at: datetime | None = None

    @classmethod
    def load(cls, data: dict[str, Any] | None, claimed_at: datetime) -> Attempt:
        data = data or {}
        return cls(
            sent_at=_parse(data.get("sent_at")) or claimed_at,
            answered_at=_parse(data.get("answered_at")),
            request_id=data.get("request_id"),
            empty_passes=int(data.get("empty_passes") or 0),
            first_empty_at=_parse(data.get("first_empty_at")),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "sent_at": self.sent_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "request_id": self.request_id,
            "empty_passes": self.empty_passes,
            "first_empty_at": self.first_empty_at.isoformat() if self.first_empty_at else None,
        }

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """When the task, if any, was created upstream (both ends padded by the clock skew)."""
        return self.sent_at - CLOCK_SKEW, (self.answered_at or now) + CLOCK_SKEW

    def searched_empty(self, now: datetime) -> Attempt:
        return Attempt(
            sent_at=self.sent_at,
            answered_at=self.answered_at,
            request_id=self.request_id,
            empty_passes=self.empty_passes + 1,
            first_empty_at=self.first_empty_at or now,
        )

    def may_resend(self, now: datetime, grace: timedelta) -> bool:
        """Nothing found twice, and the task list had `grace` after the attempt to show the task."""
        if self.empty_passes < 2 or self.first_empty_at is None:
            return False
        settled_from = max(self.answered_at or self.first_empty_at, self.first_empty_at)
        return now - settled_from >= grace


def overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


@dataclass(frozen=True)
class Adopt:
    task: ListedTask
    why: str


@dataclass(frozen=True)
class Wait:
    why: str


@dataclass(frozen=True)
class NothingFound:
    pass


Decision = Adopt | Wait | NothingFound


def by_request_id(candidates: list[ListedTask], request_id: str | None) -> Decision | None:
    """Rule 1: the cheap proof, before any task is fetched."""
    if request_id:
        for task in candidates:
            if task.request_id == request_id:
                return Adopt(task, "it carries the create's request id")
    return None


@dataclass(frozen=True)
class Candidate:
    listed: ListedTask
    detail: ProviderTask


@dataclass(frozen=True)
class Evidence:
    candidates: list[Candidate]
    our_prompt: str | None
    attempt_at: datetime
    other_creates_overlap: bool  # another unresolved create of this model overlaps our window


def decide(evidence: Evidence) -> Decision:
    """Rules 2–4 over candidates whose details were fetched."""
    ours, unknown = [], []
    for candidate in evidence.candidates:
        shown = candidate.detail.orig_prompt
        if shown is None:
            unknown.append(candidate)
        elif evidence.our_prompt is not None and shown == evidence.our_prompt:
            ours.append(candidate)
        # a different prompt: someone else's task
    if ours:
        best = min(ours, key=lambda c: _distance(c.listed, evidence.attempt_at))
        return Adopt(best.listed, "its prompt is the job's")
    if not unknown:
        return NothingFound()
    if len(unknown) == 1 and unknown[0].detail.state.terminal and not evidence.other_creates_overlap:
        return Adopt(unknown[0].listed, "it is the only task created in the attempt's window")
    return Wait("a task in the attempt's window cannot be told apart yet")


def _distance(task: ListedTask, when: datetime) -> float:
    if task.created_at is None:
        return float("inf")
    return abs((task.created_at - when).total_seconds())
