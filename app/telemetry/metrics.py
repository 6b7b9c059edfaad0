"""The gateway's own counters and histograms, kept in this process (`REGISTRY`) and rendered by `/metrics`
after the figures read from the database (`app/ops/metrics.py`).

Each concern is counted where it lives: upstream calls in `providers/dashscope/client.py`, finished jobs
and the job timings in `jobs/outcomes.py` (once the status change has committed: `after_commit`), bytes
stored and copy throughput in `storage/copy.py`, webhook attempts in `webhooks/dispatcher.py`.

Every label has a bounded set of values (operations, outcomes, statuses, the gateway's error codes, the
capability table's model names, `other` for anything else): never a job id, a tenant or a URL. The
figures are this process's: an API process and each worker answer their own, and Prometheus sums them
(`sum by (...)`; docs/OBSERVABILITY.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# `_created` series (one per label set, the time it first appeared) double the series count and no
# dashboard reads them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

#: This process's counters and histograms (not the default registry: nothing else writes into it).
REGISTRY = CollectorRegistry(auto_describe=True)
#: A label value outside its closed set (an unknown model, an error code the gateway does not write).
OTHER = "other"
#: `error_code` of a job that ended without an error (succeeded, canceled).
NO_ERROR = "none"

JOBS_FINISHED = Counter(
    "wan_gateway_jobs_finished",
    "Jobs that reached a terminal status, by status, error code (`none` without one) and model.",
    ["status", "error_code", "model"],
    registry=REGISTRY,
)
UPSTREAM_CALLS = Counter(
    "wan_gateway_upstream_calls",
    "HTTP calls to DashScope (or the sandbox), by operation (create, get, cancel, list) and outcome "
    "(ok, http_4xx, http_429, http_5xx, timeout, network).",
    ["operation", "outcome"],
    registry=REGISTRY,
)
UPSTREAM_THROTTLED = Counter(
    "wan_gateway_upstream_throttled",
    "Upstream calls answered 429 (rate or quota), by operation.",
    ["operation"],
    registry=REGISTRY,
)
UPSTREAM_LATENCY = Histogram(
    "wan_gateway_upstream_call_duration_seconds",
    "Time from sending an upstream call to its answer (or failure), by operation.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
TASK_RUN = Histogram(
    "wan_gateway_task_run_seconds",
    "How long DashScope ran a task: RUNNING to its end (its own scheduled_time → end_time), by model.",
    ["model"],
    buckets=(1, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200),
    registry=REGISTRY,
)
END_TO_STORED = Histogram(
    "wan_gateway_end_to_stored_seconds",
    "From a task's end upstream to its video stored (noticing the end, downloading, probing, publishing), "
    "by model.",
    ["model"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "wan_gateway_queue_wait_seconds",
    "From a job's creation to its task created upstream (the gateway's queue), by model.",
    ["model"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
COPY_THROUGHPUT = Histogram(
    "wan_gateway_copy_throughput_bytes_per_second",
    "Bytes per second of each video copied (download, fsync, probe and publish, end to end).",
    buckets=(1e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 2.5e7, 5e7, 1e8, 2.5e8, 1e9),
    registry=REGISTRY,
)
STORED_BYTES = Counter(
    "wan_gateway_stored_bytes",
    "Bytes of video published to storage by the copy.",
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "wan_gateway_webhook_attempts",
    "Webhook POSTs made, by outcome (ok, http_3xx, http_4xx, http_410, http_429, http_5xx, timeout, "
    "network, refused: the URL resolved to a refused address).",
    ["outcome"],
    registry=REGISTRY,
)


def http_outcome(status: int) -> str:
    """`ok` for a 2xx, `http_429` apart (throttling), else the status class (`http_4xx`)."""
    if 200 <= status < 300:
        return "ok"
    if status == 429:
        return "http_429"
    return f"http_{status // 100}xx"


def bounded(value: str | None, allowed: frozenset[str] | set[str] | Any) -> str:
    """`value` when it is one of `allowed`, else `other` (a label never takes an unbounded value)."""
    return value if value is not None and value in allowed else OTHER


def render() -> bytes:
    return prometheus_client.generate_latest(REGISTRY)


# --- after commit -------------------------------------------------------------------------------------
_PENDING = "wan_gateway.telemetry.after_commit"


def after_commit(session: Any, action: Callable[[], None]) -> None:
    """Run `action` once `session`'s transaction has committed, never if it rolls back: a figure recorded
    inside a transaction that is then undone (a lost compare-and-set, an error) must not count.
    `session` is a Session or an AsyncSession (its `sync_session` holds the pending actions)."""
    sync: Session = getattr(session, "sync_session", session)
    sync.info.setdefault(_PENDING, []).append(action)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for action in session.info.pop(_PENDING, ()):
        try:
            action()
        except Exception:  # a metric must never fail a committed write
            log.exception("recording a metric failed")


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
