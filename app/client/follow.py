"""Following a job to its end over `GET /v1/jobs/{id}/events` (server-sent events, read with httpx-sse).

Every event carries the job as `GET /v1/jobs/{id}` shows it: status events (`job.<status>`, with an
`id:`) and, from gateways that send them, ephemeral `job.progress` events (no `id:`). The stream ends
after the terminal event. When it drops or ends early (a restart, a proxy's idle timeout), the follower
reconnects with `Last-Event-ID` set to the last status event's id, so nothing is missed or shown twice,
after looking at the job itself (it may have ended meanwhile); it gives up after `MAX_FAILURES`
consecutive failed attempts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from app.client.common import checked, unreachable
from app.client.progress import JobView

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
#: The gateway sends a keep-alive comment every SSE_KEEPALIVE_S (15 s): several missed = a dead stream.
READ_TIMEOUT_S = 60.0
MAX_FAILURES = 8
#: Seconds before reconnecting after the n-th failure in a row (capped).
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0)
#: 5xx answers to the stream request worth another try (a restart, a proxy); 4xx are final.
RETRIED = frozenset({429, 500, 502, 503, 504})


def follow(
    http: httpx.Client,
    job: dict[str, Any],
    view: JobView,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Show `job` moving in `view` until it ends; return the job as it ended."""
    job_id = job["id"]
    view.update(job)
    if job.get("status") in TERMINAL:
        return job
    last_event_id: str | None = None
    failures = 0
    while True:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        timeout = httpx.Timeout(http.timeout.connect, read=READ_TIMEOUT_S)
        problem: Exception | None = None
        try:
            with connect_sse(
                http, "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout
            ) as source:
                response = source.response
                if response.status_code in RETRIED:
                    raise _Dropped(f"the event stream answered {response.status_code}")
                if response.status_code != 200:
                    response.read()
                    checked(response)  # a 4xx is final: the job is gone, the key refused
                problem = _Dropped("the event stream ended before the job")
                for event in source.iter_sse():
                    if not event.event.startswith("job."):
                        continue
                    job = event.json()["data"]
                    failures, problem = 0, None
                    if event.id:
                        last_event_id = event.id
                    view.update(job)
                    if event.id and job.get("status") in TERMINAL:
                        return job
        except (httpx.TransportError, SSEError, _Dropped) as exc:
            problem = exc
        if problem is not None:
            failures += 1
            if failures >= MAX_FAILURES:
                raise unreachable(str(http.base_url), problem) from problem
        # The stream ended or dropped before the job did: the job itself says whether it ended meanwhile.
        try:
            current = checked(http.get(f"/v1/jobs/{job_id}")).json()
        except httpx.TransportError:
            current = None
        if current is not None and current.get("status") in TERMINAL:
            view.update(current)
            return dict(current)
        sleep(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])


class _Dropped(Exception):
    """The stream could not be read to the job's end, for a reason that may pass."""
