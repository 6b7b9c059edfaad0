"""`/v1/jobs`: submit, read, list, cancel jobs, and download the stored video."""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from app.api.auth import PrincipalDep
from app.api.byteranges import MalformedRange, UnsatisfiableRange, parse_range
from app.api.deps import JobsDep, PresenterDep, StorageDep
from app.api.problems import problem_responses
from app.api.routing import StrictRoute
from app.errors import BadRequest, Conflict, FieldError, NotFound, ServiceUnavailable
from app.jobs import schemas
from app.jobs.models import Job
from app.jobs.states import JobStatus
from app.storage.base import Storage, StorageError

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=StrictRoute)
log = logging.getLogger(__name__)

_STATUSES = [s.value for s in JobStatus]


@router.post(
    "",
    status_code=202,
    response_model=schemas.Job,
    summary="Submit a video.generate job",
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
        **problem_responses(400, 401, 413, 422, 429),
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

    With an explicit `seed` (and `cache` not false), a request identical to a succeeded job answers with a
    new job that is already `succeeded` and reuses that video (`cached: true`); one identical to a job
    still running follows it (`source_job_id`) instead of being submitted again."""
    created = await jobs.submit(
        body, owner=caller.tenant, limits=caller.limits, idempotency_key=idempotency_key
    )
    job = created.job
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if created.window is not None:
        response.headers.update(created.window.headers())
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return presenter.job(job)


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
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the page before.")
    ] = None,
) -> schemas.JobList:
    statuses = [s.strip() for value in status or [] for s in value.split(",") if s.strip()]
    for value in statuses:
        if value not in _STATUSES:
            raise FieldError("status", f"unknown status {value!r}; one of {', '.join(_STATUSES)}")
    page = await jobs.page(owner=caller.tenant, statuses=statuses or None, limit=limit, cursor=cursor)
    return schemas.JobList(data=[presenter.job(j) for j in page.jobs], next_cursor=page.next_cursor)


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
    job = await jobs.get(job_id, owner=caller.tenant)
    wait = parse_prefer_wait(prefer)
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={wait}"
        if not JobStatus(job.status).terminal and wait > 0:
            job = await jobs.wait_for_event(job, wait)
    return presenter.job(job)


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
    return presenter.job(await jobs.cancel(job_id, owner=caller.tenant))


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
        **problem_responses(400, 401, 404, 409, 503),
    },
)
async def get_content(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    storage: StorageDep,
    caller: PrincipalDep,
    if_none_match: Annotated[str | None, Header()] = None,
    range_header: Annotated[
        str | None, Header(alias="range", description="One byte range, e.g. `bytes=0-1023` or `bytes=-500`.")
    ] = None,
    if_range: Annotated[
        str | None,
        Header(description="The ETag the client's partial copy has: `Range` applies if it matches."),
    ] = None,
) -> Response:
    """The video copied into the gateway's storage. Supports `Range` (206) and `If-None-Match` (304);
    the ETag is the file's sha256. With S3 storage the video is streamed from the bucket (the default) or,
    with `S3_CONTENT_MODE=redirect`, a `307` sends the client to a short-lived presigned URL. HEAD answers
    the same status and headers (the video's `Content-Length`) without the body."""
    job = await jobs.get(job_id, owner=caller.tenant)
    if job.status != JobStatus.SUCCEEDED.value or not job.storage_key or not job.result:
        raise Conflict(f"the job is {job.status}; its video is not stored yet", code="video_not_ready")
    etag = f'"{job.result["sha256"]}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400, immutable"}
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        if "*" in tags or etag in tags:
            return Response(status_code=304, headers=headers)
    # A Range that does not match the client's copy (If-Range) is ignored: it gets the whole video. One
    # that does is checked here, for every store alike: a malformed one is a problem+json 400.
    wanted = range_header if if_range is None or if_range == etag else None
    size = int(job.result["bytes"])
    byte_range = None
    if wanted is not None:
        try:
            byte_range = parse_range(wanted, size)
        except MalformedRange as exc:
            raise BadRequest(f"Range: {exc}", code="invalid_range") from None
        except UnsatisfiableRange:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    media_type = job.result.get("content_type", "video/mp4")
    filename = f"{job.id}.mp4"
    path = storage.local_path(job.storage_key)
    if path is not None and path.is_file():
        return FileResponse(
            path,
            media_type=media_type,
            filename=filename,
            content_disposition_type="inline",
            headers=headers,
        )
    try:
        url = await storage.redirect_url(job.storage_key, filename=filename, content_type=media_type)
        if url is not None:
            # The URL expires within minutes: the redirect itself must not be cached (the ETag still is
            # the video's, so If-None-Match keeps working).
            return Response(
                status_code=307, headers={"Location": url, "ETag": etag, "Cache-Control": "private, no-store"}
            )
        return await _stream(
            storage, job, byte_range, media_type, filename, headers, head=request.method == "HEAD"
        )
    except StorageError as exc:
        log.warning("job %s: cannot serve its video: %s", job.id, exc)
        raise ServiceUnavailable(
            "the video store cannot be reached; try again later",
            code="storage_unavailable",
            headers={"Retry-After": "5"},
        ) from exc


async def _stream(
    storage: Storage,
    job: Job,
    byte_range: tuple[int, int] | None,
    media_type: str,
    filename: str,
    headers: dict[str, str],
    *,
    head: bool,
) -> Response:
    """Stream the stored video (or one range of it) through the gateway, as FileResponse does a file.
    A HEAD only asks the store whether the object is there: no stream is opened for it."""
    assert job.storage_key is not None and job.result is not None
    size = int(job.result["bytes"])
    start, stop, status = 0, size, 200
    if byte_range is not None:
        (start, stop), status = byte_range, 206
    headers = {
        **headers,
        "Accept-Ranges": "bytes",
        "Content-Length": str(stop - start),
        "Content-Disposition": f'inline; filename="{filename}"',
    }
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    if head:
        if await storage.stat(job.storage_key) is None:
            raise NotFound("the stored video is missing", code="video_missing")
        return Response(status_code=status, media_type=media_type, headers=headers)
    stream = await storage.open_range(job.storage_key, start, stop)
    if stream is None:
        raise NotFound("the stored video is missing", code="video_missing")
    # The body is relayed chunk by chunk, never buffered; the background task releases the connection to
    # the store even when the client hangs up before the first chunk.
    return StreamingResponse(
        stream,
        status_code=status,
        media_type=media_type,
        headers=headers,
        background=BackgroundTask(stream.aclose),
    )
