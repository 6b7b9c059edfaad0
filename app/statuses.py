"""The job statuses and their event types, and the webhook delivery statuses: the words of the public
contract (a job's `status`, the webhook and server-sent event types `job.<status>`, the settings that name
events, a delivery's `status`).

They are written here once: the `jobs.status` column stores `JobStatus`, the API's enums
(`jobs/schemas.JobStatusName`, `EventType`) and the settings' event names (`config.py`) are derived from
it. A leaf module, below `config` and every package: `jobs/states.py` holds the rules over them.
"""

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


def event_type(status: JobStatus) -> str:
    """The event (webhook, server-sent event) a job emits when it enters `status`."""
    return f"job.{status.value}"


class DeliveryStatus(StrEnum):
    """A webhook delivery's status (the `webhook_deliveries.status` column, `Delivery.status`)."""

    PENDING = "pending"  # to be sent (again) at `next_attempt_at`
    SUCCEEDED = "succeeded"  # the receiver answered 2xx
    FAILED = "failed"  # given up: retries exhausted, 410 Gone, refused address, the event gone


#: Every event type, in the order of the statuses.
EVENT_TYPES = tuple(event_type(s) for s in JobStatus)
#: The events of the terminal statuses: what webhooks receive unless they ask for more.
TERMINAL_EVENTS = tuple(event_type(s) for s in JobStatus if s.terminal)
