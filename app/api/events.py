"""`GET /v1/jobs/{id}/events`: server-sent events of a job's status changes, live.

Each event is `id: <event id>`, `event: job.<status>`, `data: <the webhook payload>`. A reconnecting
client sends `Last-Event-ID` and gets what it missed first; without it the stream replays the job's
whole history. Comment lines keep idle connections alive; the stream ends after the terminal event.

Between status events, while the job has not finished, the stream sends ephemeral `job.progress` events
(no `id:` line, so they never move a client's `Last-Event-ID`; never stored, never a webhook): the job as
`GET` returns it now, at most every SSE_PROGRESS_INTERVAL_S, only when its `progress`, `queue_position`
or `eta` changed.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.auth import PrincipalDep, job_scope
from app.api.deps import FeedDep, JobsDep, PresenterDep, StreamsDep
from app.api.problems import problem_responses
from app.api.routing import StrictRoute
from app.db.base import utcnow
from app.errors import FieldError
from app.jobs.feed import wait_changed
from app.jobs.states import EVENT_TYPES, TERMINAL_EVENTS, JobStatus
from app.webhooks import payloads

#: Event ids are 64-bit: a larger number cannot be one (nor be bound in a query).
MAX_EVENT_ID = 2**63 - 1
_EVENT_ID = re.compile(r"[0-9]{1,18}")

#: The ephemeral event a stream sends between status events (never stored, never a webhook).
PROGRESS_EVENT = "job.progress"

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=StrictRoute)

EXAMPLE = """\
id: 41
event: job.running
data: {"type":"job.running","timestamp":"2026-11-21T20:57:01Z","data":{"id":"job_…","status":"running",…}}

: ping - 2026-11-21 20:57:16+00:00

event: job.progress
data: {"type":"job.progress","timestamp":"2026-11-21T20:57:03Z","data":{"id":"job_…","progress":41,…}}

id: 44
event: job.succeeded
data: {"type":"job.succeeded","timestamp":"2026-11-21T20:57:11Z","data":{…}}
"""


#: The `data` of a `job.progress` event: a WebhookPayload's shape, but no status change.
PROGRESS_SCHEMA = {
    "type": "object",
    "title": "ProgressEvent",
    "required": ["type", "timestamp", "data"],
    "properties": {
        "type": {"type": "string", "const": PROGRESS_EVENT},
        "timestamp": {"type": "string", "format": "date-time", "description": "When it was sent."},
        "data": {"$ref": "#/components/schemas/Job", "description": "The job as GET returns it now."},
    },
}

#: One event of the stream (OpenAPI 3.1 documents a `text/event-stream` by the schema of each event).
EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The event id: send it back as `Last-Event-ID` (or `after`) to resume. Absent "
            "on `job.progress`.",
        },
        "event": {
            "type": "string",
            "enum": [*EVENT_TYPES, PROGRESS_EVENT],
            "description": "`job.<status>`: the job entered that status. `job.progress`: ephemeral, no "
            "`id`, sent while the job has not finished (at most every SSE_PROGRESS_INTERVAL_S, only when "
            "`progress`, `queue_position` or `eta` changed); never a webhook, never replayed.",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"oneOf": [{"$ref": "#/components/schemas/WebhookPayload"}, PROGRESS_SCHEMA]},
            "description": "A WebhookPayload, as JSON; for `job.progress`, the same shape with `type` "
            "`job.progress` and `data` the job as `GET /v1/jobs/{id}` returns it now.",
        },
    },
}


@router.get(
    "/{job_id}/events",
    summary="Stream a job's status changes (server-sent events)",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`text/event-stream`; `data` of each status event is a WebhookPayload, of each "
            "`job.progress` event a ProgressEvent",
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA, "example": EXAMPLE}},
        },
        **problem_responses(401, 404, 422),
    },
)
async def job_events(
    job_id: str,
    jobs: JobsDep,
    feed: FeedDep,
    streams: StreamsDep,
    presenter: PresenterDep,
    caller: PrincipalDep,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this event id.")
    ] = None,
    after: Annotated[
        int | None,
        Query(
            ge=0, le=MAX_EVENT_ID, description="Same as Last-Event-ID, for clients that cannot set headers."
        ),
    ] = None,
) -> EventSourceResponse:
    await jobs.get(job_id, owner=job_scope(caller))  # 404 before the stream starts
    start = after or 0
    if last_event_id is not None:
        if not _EVENT_ID.fullmatch(last_event_id.strip()):
            raise FieldError("Last-Event-ID", "must be the id of an event of this stream")
        start = int(last_event_id)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        seen = start
        shown: tuple[object, ...] | None = None  # progress, queue position, ETA last sent
        progress_due = 0.0  # monotonic time of the next progress event
        async with feed.watch(job_id) as changed:
            while True:
                changed.clear()
                # Status first, events second: the terminal event commits with the terminal status, so
                # a job seen finished here has all its events visible to the read below.
                job = await jobs.get(job_id, owner=job_scope(caller))
                finished = JobStatus(job.status).terminal
                events = await jobs.events_after(job_id, seen)
                for event in events:
                    seen = event.id
                    data = payloads.body(event.type, event.created_at, event.data)
                    yield ServerSentEvent(data=data, event=event.type, id=str(event.id))
                    if event.type in TERMINAL_EVENTS:
                        return
                if finished:
                    return  # resumed after the terminal event: nothing more will come
                if events:
                    continue  # read the job again: it may have moved on while they were sent
                if time.monotonic() >= progress_due:
                    progress_due = time.monotonic() + streams.progress_s
                    live = (await jobs.live([job])).get(job.id)
                    if live is not None and (now := (live.progress, live.queue_position, live.eta)) != shown:
                        shown = now
                        data = payloads.body(PROGRESS_EVENT, utcnow(), presenter.job_json(job, live))
                        yield ServerSentEvent(data=data, event=PROGRESS_EVENT)  # no id: not resumable
                wait = min(streams.recheck_s, max(0.0, progress_due - time.monotonic()))
                await wait_changed(changed, wait)

    return EventSourceResponse(stream(), ping=streams.keepalive_s, headers={"Cache-Control": "no-cache"})
