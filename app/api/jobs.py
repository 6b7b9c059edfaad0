"""`/v1/jobs`: submit, read, list, cancel and delete jobs, and download the stored video and its poster
frame (both served by `stored.serve_stored`)."""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse

from app.api.auth import PrincipalDep, job_scope
from app.api.deps import JobsDep, PresenterDep, RenditionsDep, StorageDep
from app.api.forms import multipart_body
from app.api.problems import problem_responses
from app.api.routing import StrictRoute
from app.api.stored import (
    IfNoneMatchHeader,
    IfRangeHeader,
    RangeHeader,
    serve_job_file,
    serve_stored,
    video_object,
)
from app.errors import Conflict, FieldError
from app.jobs import schemas
from app.jobs.models import Job
from app.jobs.presenter import Presenter
from app.jobs.service import JobService
from app.jobs.states import JobStatus
from app.providers.dashscope.capabilities import MODELS

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=StrictRoute)
log = logging.getLogger(__name__)

_STATUSES = [s.value for s in JobStatus]


@router.post(
    "",
    status_code=202,
    response_model=schemas.Job,
    summary="Submit a video.generate job",
    openapi_extra=multipart_body(schemas.JobCreate, files=("reference_image", "last_frame_image")),
    responses={
        202: {
            "description": "The job (new, reused, or the one an earlier request with this Idempotency-Key "
            "created)",
            "headers": {
                "Location": {"description": "`/v1/jobs/{id}`", "schema": {"type": "string"}},
                "Idempotent-Replayed": {
                    "description": "`true` when the answer is the job an earlier request with the same "
                    "Idempotency-Key and body created (nothing new was made)",
                    "schema": {"type": "string", "enum": ["true"]},
                },
            },
        },
        **problem_responses(400, 401, 402, 413, 422, 429),
        503: {
            **problem_responses(503)[503],
            "description": "Every reference-image checker stayed busy (`image_checks_busy`), or the database "
            "is unavailable: retry after `Retry-After`",
        },
        409: {
            **problem_responses(409)[409],
            "description": "A request with this Idempotency-Key is still being processed "
            "(`idempotency_key_in_progress`): retry after `Retry-After`",
        },
        410: {
            **problem_responses(410)[410],
            "description": "The job this Idempotency-Key created was deleted (`job_deleted`): use a new key",
        },
    },
)
async def create_job(
    body: schemas.JobCreate,
    jobs: JobsDep,
    presenter: PresenterDep,
    caller: PrincipalDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Makes retries safe: within IDEMPOTENCY_TTL_S (24 h) the same key with the same "
            "body returns the same job (with `Idempotent-Replayed: true`) and creates nothing; the same key "
            "with a different body is a 422; while the first request is still being written, a 409 with "
            "`Retry-After`. A request that fails (e.g. validation) does not use the key up.",
        ),
    ] = None,
) -> schemas.Job:
    """Validates the request against the model's capabilities and stores it as `queued`. DashScope is
    never called here: a background loop submits it, within the account's rate and concurrency limits.

    The body is JSON, or `multipart/form-data` with the same fields as form fields and the images as
    uploaded files (`curl -F reference_image=@cat.png -F prompt=hi`): numbers and booleans as text,
    `metadata` as JSON text, `webhook_events` repeated (or one JSON array). An
    `application/x-www-form-urlencoded` body (`curl -d`) is read the same way (images as URLs then).

    With an explicit `seed` (and `cache` not false), a request identical to a succeeded job answers with a
    new job that is already `succeeded` and reuses that video (`cached: true`); one identical to a job
    still running follows it (`source_job_id`) instead of being submitted again."""
    created = await jobs.submit(
        body,
        owner=caller.tenant,
        api_key=caller.key_name,
        limits=caller.limits,
        idempotency_key=idempotency_key,
    )
    job = created.job
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if created.window is not None:
        response.headers.update(created.window.headers())
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return await _view(jobs, presenter, job)


@router.get(
    "",
    response_model=schemas.JobList,
    summary="List jobs, newest first",
    responses=problem_responses(401, 422),
)
async def list_jobs(
    jobs: JobsDep,
    presenter: PresenterDep,
    caller: PrincipalDep,
    status: Annotated[
        list[str] | None,
        Query(description="Only these statuses (repeat the parameter or separate with commas)."),
    ] = None,
    model: Annotated[
        str | None, Query(max_length=64, description="Only jobs of this model (see `GET /v1/models`).")
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
    if model is not None and model not in MODELS:
        raise FieldError("model", f"unknown model {model[:64]!r}; GET /v1/models lists them")
    page = await jobs.page(
        owner=job_scope(caller), statuses=statuses or None, model=model, limit=limit, cursor=cursor
    )
    live = await jobs.live(page.jobs)  # a few queries for the page, whatever its size
    return schemas.JobList(
        data=[presenter.job(j, live.get(j.id)) for j in page.jobs], next_cursor=page.next_cursor
    )


@router.get(
    "/{job_id}",
    response_model=schemas.Job,
    summary="Get a job",
    responses=problem_responses(401, 404),
)
async def get_job(
    job_id: str,
    jobs: JobsDep,
    presenter: PresenterDep,
    caller: PrincipalDep,
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
    job = await jobs.get(job_id, owner=job_scope(caller))
    wait = parse_prefer_wait(prefer)
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={wait}"
        if not JobStatus(job.status).terminal and wait > 0:
            job = await jobs.wait_for_event(job, wait)
    return await _view(jobs, presenter, job)


async def _view(jobs: JobService, presenter: Presenter, job: Job) -> schemas.Job:
    """The job with its progress, queue position and ETA right now."""
    return presenter.job(job, (await jobs.live([job])).get(job.id))


_PREFER_WAIT = re.compile(r'(?:^|[,;\s])wait\s*=\s*"?([0-9]+)"?', re.IGNORECASE)
MAX_WAIT_S = 60


def parse_prefer_wait(prefer: str | None) -> int | None:
    """RFC 7240 `wait` preference, capped at 60 s; None when absent."""
    match = _PREFER_WAIT.search(prefer or "")
    if not match:
        return None
    digits = match.group(1).lstrip("0") or "0"
    # Thousands of digits are still "a long wait", not an error (int() refuses > 4300 digits).
    return MAX_WAIT_S if len(digits) > 3 else min(int(digits), MAX_WAIT_S)


@router.post(
    "/{job_id}/cancel",
    response_model=schemas.Job,
    summary="Cancel a job",
    responses=problem_responses(401, 404, 409, 503),
)
async def cancel_job(
    job_id: str, jobs: JobsDep, presenter: PresenterDep, caller: PrincipalDep
) -> schemas.Job:
    """A job not yet submitted is canceled here; a task still PENDING upstream is canceled there; a
    running one cannot be canceled (409, DashScope only cancels PENDING tasks). Canceling twice is fine."""
    return await _view(jobs, presenter, await jobs.cancel(job_id, owner=job_scope(caller)))


@router.get(
    "/{job_id}/content",
    summary="Download the stored MP4",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The whole video"},
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        307: {
            "description": "S3 storage with `S3_CONTENT_MODE=redirect`: `Location` is a presigned URL of the "
            "video, valid for `S3_PRESIGN_TTL_S` seconds (it honours `Range` too)"
        },
        416: {"description": "Range not satisfiable"},
        **problem_responses(400, 401, 404, 409, 410, 503),
    },
)
async def get_content(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    storage: StorageDep,
    caller: PrincipalDep,
    if_none_match: IfNoneMatchHeader = None,
    range_header: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Response:
    """The video copied into the gateway's storage. Supports `Range` (206) and `If-None-Match` (304);
    the ETag is the file's sha256. With S3 storage the video is streamed from the bucket (the default) or,
    with `S3_CONTENT_MODE=redirect`, a `307` sends the client to a short-lived presigned URL. HEAD answers
    the same status and headers (the video's `Content-Length`) without the body. Once STORAGE_RETENTION_S
    removed the video: `410 Gone` (`video_expired`)."""
    # The headers are read by serve_stored; declared here for the API reference.
    del if_none_match, range_header, if_range
    video = video_object(await jobs.get(job_id, owner=job_scope(caller)))
    return await serve_stored(request, storage, video, filename=f"{job_id}.mp4")


@router.get(
    "/{job_id}/thumbnail",
    summary="A JPEG poster frame of the stored video",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The poster frame"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        307: {"description": "S3 storage with `S3_CONTENT_MODE=redirect`: a presigned URL of the JPEG"},
        **problem_responses(401, 404, 409, 410, 503),
    },
)
async def get_thumbnail(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    storage: StorageDep,
    renditions: RenditionsDep,
    caller: PrincipalDep,
    if_none_match: IfNoneMatchHeader = None,
) -> Response:
    """A frame from about one second into the stored video (the video's size, at most 1280 px wide), as
    JPEG. Rendered from the stored file on the first request and stored beside it; later requests get
    the stored JPEG (ETag: its sha256). `409` (`job_not_succeeded`) while the job has no video, `410`
    (`video_expired`) once STORAGE_RETENTION_S removed it."""
    del if_none_match  # read by serve_stored; declared here for the API reference
    job = await jobs.get(job_id, owner=job_scope(caller))
    if job.status != JobStatus.SUCCEEDED.value or not job.storage_key:
        raise Conflict(
            f"the job is {job.status}; it has no video to take a frame of", code="job_not_succeeded"
        )
    return await serve_job_file(request, storage, renditions, job, "thumbnail")


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a finished job",
    responses={204: {"description": "Deleted"}, **problem_responses(401, 404, 409)},
)
async def delete_job(job_id: str, jobs: JobsDep, caller: PrincipalDep) -> Response:
    """Deletes a finished job (succeeded, failed or canceled) with its stored video and thumbnails: from
    then on it is a 404 on every route and out of the list. A video that result reuse shares with other
    jobs stays until the last of them is deleted. An unfinished job is a `409` (`job_not_finished`):
    cancel it first. The job's `Idempotency-Key` stays used until it expires (a retry gets `410`)."""
    await jobs.delete(job_id, owner=job_scope(caller))
    return Response(status_code=204)
