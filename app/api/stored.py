"""Serving one stored object (a video, a thumbnail): the one answer every download route gives.

`serve_stored` answers as `/v1/jobs/{id}/content` always has: the ETag is the object's sha256 and
`If-None-Match` gets a 304; one `Range` (honoured only when `If-Range` names that ETag, or is absent) gets a
206, a malformed one a problem+json 400, an unsatisfiable one a 416; then a local file is a `FileResponse`,
an S3 store set up for redirects a `307` to a presigned URL (not cached), anything else a stream from the
store relayed chunk by chunk (a HEAD only stats the object). A store that fails is a 503 with
`Retry-After`; an object that is gone a 404 `<what>_missing`.

`stored_video_of` (409 `video_not_ready`, 410 `video_expired`) and `rendition` (a rendition rendered if
needed, its failures as problems) are what a route checks before serving a job's video or rendition.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import Header, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from app.api.byteranges import MalformedRange, UnsatisfiableRange, parse_range
from app.errors import BadRequest, Conflict, Gone, NotFound, ServiceUnavailable
from app.jobs.models import Job
from app.jobs.states import JobStatus
from app.storage.base import Storage, StorageError, StoredObject
from app.storage.renditions import Renditions, Variant, VideoMissing

log = logging.getLogger(__name__)

IMMUTABLE = "private, max-age=86400, immutable"

# The conditional and range headers `serve_stored` reads from the request, declared once for the routes
# that use it, so each documents them alike in the API reference (the handlers never read the values).
IfNoneMatchHeader = Annotated[
    str | None, Header(alias="if-none-match", description="An ETag the client has: `304` when it matches.")
]
RangeHeader = Annotated[
    str | None, Header(alias="range", description="One byte range, e.g. `bytes=0-1023` or `bytes=-500`.")
]
IfRangeHeader = Annotated[
    str | None,
    Header(
        alias="if-range", description="The ETag the client's partial copy has: `Range` applies if it matches."
    ),
]


async def serve_stored(
    request: Request,
    storage: Storage,
    stored: StoredObject,
    *,
    filename: str,
    what: str = "video",
    cache_control: str = IMMUTABLE,
) -> Response:
    """Answer `request` (GET or HEAD) with the stored object `stored` (its key, size, sha256 and type as
    recorded), named `filename` in `Content-Disposition: inline`. Reads `If-None-Match`, `Range` and
    `If-Range` from the request. `what` names the object in errors and logs (`video` → `video_missing`)."""
    etag = f'"{stored.sha256}"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        if "*" in tags or etag in tags:
            return Response(status_code=304, headers=headers)
    # A Range that does not match the client's copy (If-Range) is ignored: it gets the whole object. One
    # that does is checked here, for every store alike: a malformed one is a problem+json 400.
    if_range = request.headers.get("if-range")
    wanted = request.headers.get("range") if if_range is None or if_range == etag else None
    size = stored.size_bytes
    byte_range = None
    if wanted is not None:
        try:
            byte_range = parse_range(wanted, size)
        except MalformedRange as exc:
            raise BadRequest(f"Range: {exc}", code="invalid_range") from None
        except UnsatisfiableRange:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    media_type = stored.content_type
    path = storage.local_path(stored.key)
    if path is not None and path.is_file():
        return FileResponse(
            path,
            media_type=media_type,
            filename=filename,
            content_disposition_type="inline",
            headers=headers,
        )
    try:
        url = await storage.redirect_url(stored.key, filename=filename, content_type=media_type)
        if url is not None:
            # The URL expires within minutes: the redirect itself must not be cached (the ETag still is
            # the object's, so If-None-Match keeps working).
            return Response(
                status_code=307, headers={"Location": url, "ETag": etag, "Cache-Control": "private, no-store"}
            )
        return await _stream(
            storage, stored, byte_range, filename, headers, what=what, head=request.method == "HEAD"
        )
    except StorageError as exc:
        log.warning("cannot serve the %s %s: %s", what, stored.key, exc)
        raise ServiceUnavailable(
            f"the {what} store cannot be reached; try again later",
            code="storage_unavailable",
            headers={"Retry-After": "5"},
        ) from exc


def stored_video_of(job: Job) -> Job:
    """`job` if its video is stored: a 409 `video_not_ready` problem before it succeeded, a 410
    `video_expired` once STORAGE_RETENTION_S removed it."""
    if job.status != JobStatus.SUCCEEDED.value or not job.storage_key or not job.result:
        raise Conflict(f"the job is {job.status}; its video is not stored yet", code="video_not_ready")
    if job.expired_at is not None:
        raise Gone(
            f"the stored video was removed at {job.expired_at.isoformat()} (STORAGE_RETENTION_S)",
            code="video_expired",
        )
    return job


def video_object(job: Job) -> StoredObject:
    """The stored video of a job, as its `result` recorded it (no store call), for `serve_stored`; the
    problems of `stored_video_of` when there is none."""
    job = stored_video_of(job)
    assert job.storage_key is not None and job.result is not None
    return StoredObject(
        key=job.storage_key,
        size_bytes=int(job.result["bytes"]),
        sha256=str(job.result["sha256"]),
        content_type=job.result.get("content_type", "video/mp4"),
    )


async def rendition(renditions: Renditions, video_key: str, variant: Variant) -> StoredObject:
    """The stored rendition, rendered now if needed: 404 `video_missing` when the video is gone from the
    store, 503 `storage_unavailable` when the store fails."""
    try:
        return await renditions.ensure(video_key, variant)
    except VideoMissing:
        raise NotFound("the stored video is missing", code="video_missing") from None
    except StorageError as exc:
        log.warning("cannot render the %s of %s: %s", variant, video_key, exc)
        raise ServiceUnavailable(
            "the video store cannot be reached; try again later",
            code="storage_unavailable",
            headers={"Retry-After": "5"},
        ) from exc


async def _stream(
    storage: Storage,
    stored: StoredObject,
    byte_range: tuple[int, int] | None,
    filename: str,
    headers: dict[str, str],
    *,
    what: str,
    head: bool,
) -> Response:
    """Stream the stored object (or one range of it) through the gateway, as FileResponse does a file.
    A HEAD only asks the store whether the object is there: no stream is opened for it."""
    size = stored.size_bytes
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
        if await storage.stat(stored.key) is None:
            raise NotFound(f"the stored {what} is missing", code=f"{what}_missing")
        return Response(status_code=status, media_type=stored.content_type, headers=headers)
    stream = await storage.open_range(stored.key, start, stop)
    if stream is None:
        raise NotFound(f"the stored {what} is missing", code=f"{what}_missing")
    # The body is relayed chunk by chunk, never buffered; the background task releases the connection to
    # the store even when the client hangs up before the first chunk.
    return StreamingResponse(
        stream,
        status_code=status,
        media_type=stored.content_type,
        headers=headers,
        background=BackgroundTask(stream.aclose),
    )


async def serve_job_file(
    request: Request,
    storage: Storage,
    renditions: Renditions,
    job: Job,
    variant: Literal["video"] | Variant,
) -> Response:
    """A job's stored video, or one of its renditions (rendered once): what `/content`, `/thumbnail`,
    `/v1/links/…` and `/v1/videos/{id}/content?variant=` answer, with `stored_video_of`'s problems."""
    if variant == "video":
        return await serve_stored(request, storage, video_object(job), filename=f"{job.id}.mp4")
    job = stored_video_of(job)
    assert job.storage_key is not None
    image = await rendition(renditions, job.storage_key, variant)
    return await serve_stored(request, storage, image, filename=f"{job.id}.{variant}.jpg", what=variant)
