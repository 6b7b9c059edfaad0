"""What a job's status change tells the metrics (`app/telemetry/metrics.py`), recorded by
`transitions.py` for every status a job enters and counted only once the transaction commits.

- entering `submitted`: the queue wait, created → its task created upstream;
- entering `storing` (or ending straight from `running`/`submitted`): the task's run time upstream,
  DashScope's own `scheduled_time` → `end_time` (one clock, whatever its zone);
- entering `succeeded` after a task of its own: end → stored, on our clock: the task's end is placed at
  `submitted_at` + (`end_time` − `submit_time`), as `pacing.running_since` places its start;
- entering any terminal status: `wan_gateway_jobs_finished_total` by status, error code and model.

Labels stay bounded: a model outside the capability table and an error code outside `ERROR_CODES` are
`other`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.jobs.models import Job
from app.jobs.pacing import upstream_seconds
from app.jobs.states import JobStatus
from app.providers.dashscope.capabilities import MODELS
from app.storage.copy import CopyErrorCode
from app.telemetry import metrics

#: The codes the gateway writes into `job.error.code` (jobs/poller.py, storage/copy.py): the closed set of
#: the `error_code` label. A follower carries its leader's.
ERROR_CODES = frozenset(
    {
        "deadline_exceeded",
        "upstream_rejected",
        "upstream_failed",
        "upstream_task_unknown",
        "upstream_task_conflict",
        "upstream_account_refused",
        "create_outcome_unknown",
        *(code.value for code in CopyErrorCode),
    }
)


def model_label(model: str | None) -> str:
    return metrics.bounded(model, MODELS)


def record(session: Any, job: Job, previous: JobStatus | None) -> None:
    """`job` just entered its status (from `previous`; None for a new job) in `session`'s transaction:
    what it tells the metrics is recorded after the commit. Reads only the row, so it costs nothing."""
    status = JobStatus(job.status)
    model = model_label(job.model)
    observations: list[tuple[Any, float]] = []
    upstream: dict[str, Any] = job.upstream or {}
    own_task = job.task_id is not None and job.source_job_id is None
    if status is JobStatus.SUBMITTED and job.submitted_at is not None and job.created_at is not None:
        observations.append((metrics.QUEUE_WAIT, (job.submitted_at - job.created_at).total_seconds()))
    upstream_ended = status is JobStatus.STORING or (
        status.terminal and previous in (JobStatus.SUBMITTED, JobStatus.RUNNING)
    )
    if own_task and upstream_ended:
        ran = upstream_seconds(upstream.get("scheduled_time"), upstream.get("end_time"))
        if ran is not None:
            observations.append((metrics.TASK_RUN, ran))
    if own_task and status is JobStatus.SUCCEEDED and job.finished_at is not None:
        ended = _ended_on_our_clock(job.submitted_at, upstream)
        if ended is not None:
            observations.append((metrics.END_TO_STORED, max(0.0, (job.finished_at - ended).total_seconds())))
    finished: tuple[str, str, str] | None = None
    if status.terminal:
        code = (job.error or {}).get("code") if status is JobStatus.FAILED else None
        error = metrics.NO_ERROR if code is None else metrics.bounded(str(code), ERROR_CODES)
        finished = (status.value, error, model)
    if not observations and finished is None:
        return

    def emit() -> None:
        for histogram, value in observations:
            histogram.labels(model).observe(value)
        if finished is not None:
            metrics.JOBS_FINISHED.labels(*finished).inc()

    metrics.after_commit(session, emit)


def _ended_on_our_clock(submitted_at: datetime | None, upstream: dict[str, Any]) -> datetime | None:
    offset = upstream_seconds(upstream.get("submit_time"), upstream.get("end_time"))
    if submitted_at is None or offset is None:
        return None
    return submitted_at + timedelta(seconds=offset)
