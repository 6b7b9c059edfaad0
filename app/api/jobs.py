"""`/v1/jobs`: submit, read, list, cancel jobs, and download the stored video."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import FileResponse

from app.api.deps import GatewayDep
from app.api.problems import problem_responses
from app.errors import Conflict, FieldError, NotFound
from app.jobs import schemas
from app.jobs.states import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_STATUSES = [s.value for s in JobStatus]


@router.post(
    "",
    status_code=202,
    response_model=schemas.Job,
    summary="Submit a video.generate job",
    responses=problem_responses(400, 422),
)
async def create_job(body: schemas.JobCreate, gateway: GatewayDep, response: Response) -> schemas.Job:
    """Validates the request against the model's capabilities and stores it as `queued`. DashScope is
    never called here: a background loop submits it, within the account's rate and concurrency limits."""
    job = await gateway.service.create(body)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return gateway.presenter.job(job)


@router.get(
    "",
    response_model=schemas.JobList,
    summary="List jobs, newest first",
    responses=problem_responses(422),
)
async def list_jobs(
    gateway: GatewayDep,
    status: Annotated[
        list[str] | None,
        Query(description="Only these statuses (repeat the parameter or separate with commas)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the page before.")
    ] = None,
) -> schemas.JobList:
    statuses = [s.strip() for value in status or [] for s in value.split(",") if s.strip()]
    for value in statuses:
        if value not in _STATUSES:
            raise FieldError("status", f"unknown status {value!r}; one of {', '.join(_STATUSES)}")
    page = await gateway.service.page(owner=None, statuses=statuses or None, limit=limit, cursor=cursor)
    return schemas.JobList(data=[gateway.presenter.job(j) for j in page.jobs], next_cursor=page.next_cursor)


@router.get(
    "/{job_id}",
    response_model=schemas.Job,
    summary="Get a job",
    responses=problem_responses(404),
)
async def get_job(
    job_id: str,
    gateway: GatewayDep,
    response: Response,
    prefer: Annotated[
        str | None,
        Header(
            description="`wait=N` (N ≤ 60): hold the answer until the job changes status or N seconds pass."
        ),
    ] = None,
) -> schemas.Job:
    """With `Prefer: wait=N` this is a long poll: it answers as soon as the job enters a new status, or
    after N seconds (at most 60) with the job unchanged; a finished job answers at once."""
    job = await gateway.service.get(job_id)
    wait = parse_prefer_wait(prefer)
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={wait}"
        if not JobStatus(job.status).terminal and wait > 0:
            job = await gateway.service.wait_for_event(job, wait)
    return gateway.presenter.job(job)


_PREFER_WAIT = re.compile(r'(?:^|[,;\s])wait\s*=\s*"?(\d+)"?', re.IGNORECASE)
MAX_WAIT_S = 60


def parse_prefer_wait(prefer: str | None) -> int | None:
    """RFC 7240 `wait` preference, capped at 60 s; None when absent."""
    match = _PREFER_WAIT.search(prefer or "")
    return min(int(match.group(1)), MAX_WAIT_S) if match else None


@router.post(
    "/{job_id}/cancel",
    response_model=schemas.Job,
    summary="Cancel a job",
    responses=problem_responses(404, 409, 503),
)
async def cancel_job(job_id: str, gateway: GatewayDep) -> schemas.Job:
    """A job not yet submitted is canceled here; a task still PENDING upstream is canceled there; a
    running one cannot be canceled (409, DashScope only cancels PENDING tasks). Canceling twice is fine."""
    return gateway.presenter.job(await gateway.service.cancel(job_id))


@router.get(
    "/{job_id}/content",
    summary="Download the stored MP4",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The whole video"},
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        416: {"description": "Range not satisfiable"},
        **problem_responses(404, 409),
    },
)
async def get_content(
    job_id: str,
    gateway: GatewayDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The video copied into the gateway's storage. Supports `Range` (206) and `If-None-Match` (304);
    the ETag is the file's sha256."""
    job = await gateway.service.get(job_id)
    if job.status != JobStatus.SUCCEEDED.value or not job.storage_key or not job.result:
        raise Conflict(f"the job is {job.status}; its video is not stored yet", code="video_not_ready")
    etag = f'"{job.result["sha256"]}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400, immutable"}
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        if "*" in tags or etag in tags:
            return Response(status_code=304, headers=headers)
    path = gateway.storage.local_path(job.storage_key)
    if path is None or not path.is_file():
        raise NotFound("the stored video is missing", code="video_missing")
    return FileResponse(
        path,
        media_type=job.result.get("content_type", "video/mp4"),
        filename=f"{job.id}.mp4",
        content_disposition_type="inline",
        headers=headers,
    )
