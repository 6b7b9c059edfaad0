"""`/v1/videos`: OpenAI's Videos API over the job service (`client.videos.*` of the `openai` SDK).

Each route is a translation: parse OpenAI's request (`forms.py`, `translate.py`), call `JobService`, and
answer OpenAI's object. Tenancy, quotas, `Idempotency-Key`, result reuse and webhooks are the service's,
so a video is an ordinary job, visible at `/v1/jobs/{id}` too. Errors are OpenAI's envelope (`errors.py`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response

from app.api.auth import PrincipalDep
from app.api.deps import JobsDep, RenditionsDep, StorageDep
from app.api.routing import StrictRoute
from app.api.stored import (
    IfNoneMatchHeader,
    IfRangeHeader,
    RangeHeader,
    serve_job_file,
)
from app.compat.openai import translate
from app.compat.openai.errors import PREFIX, renamed
from app.compat.openai.forms import create_params
from app.compat.openai.schemas import OpenAIError, Video, VideoDeleted, VideoList
from app.errors import FieldError, NotFound
from app.jobs.estimates import Live
from app.jobs.models import Job
from app.jobs.schemas import JobCreate
from app.jobs.service import Created, JobService
from app.providers.dashscope.mapping import sent_images
from app.tenants.auth import Principal

TAG = "OpenAI-compatible videos"
router = APIRouter(prefix=PREFIX, tags=[TAG], route_class=StrictRoute)

_ERRORS = {
    400: "A parameter is invalid or unknown: `param` names it (in OpenAI's names: `seconds`, `model`, …)",
    401: "No API key, or one that is unknown or revoked",
    402: "The video's estimated cost does not fit the key's budget (`code`: `budget_exceeded`)",
    404: "No such video (or another tenant's)",
    409: "The video is not in a state that allows this",
    410: "The stored video was removed (STORAGE_RETENTION_S)",
    429: "A quota of this key is used up; retry after `Retry-After`",
    503: "A dependency is unavailable; retry after `Retry-After`",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": OpenAIError, "description": _ERRORS[status]} for status in statuses}


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="As on `POST /v1/jobs`: the same key and parameters within 24 h return the same video.",
    ),
]

_POLL_AFTER = {
    "openai-poll-after-ms": {
        "description": "While the video is queued or in progress: milliseconds to wait before asking again "
        "(a step of the time left until its expected end, within POLL_MIN_INTERVAL_S–POLL_MAX_INTERVAL_S). "
        "The `openai` SDK's `poll`/`create_and_poll` sleep for it.",
        "schema": {"type": "integer"},
    }
}

_CREATE_FIELDS: dict[str, Any] = {
    "prompt": {"type": "string", "description": "What happens in the video."},
    "model": {
        "type": "string",
        "default": "wan2.6-i2v-flash",
        "description": "A Wan image-to-video model (docs/MODELS.md); OpenAI's sora models are not served.",
    },
    "seconds": {
        "type": "string",
        "examples": ["5"],
        "description": "Clip length, one of the model's durations (wan2.6-i2v-flash: 2–15), as a string.",
    },
    "size": {
        "type": "string",
        "examples": ["1280x720"],
        "description": "`WIDTHxHEIGHT`: picks the resolution tier; the video keeps the image's aspect ratio.",
    },
}
_WAN_OPTIONS_NOTE = (
    "Wan options of `POST /v1/jobs` are accepted as extra fields: " + ", ".join(translate.WAN_OPTIONS) + "."
)
_CREATE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "description": _WAN_OPTIONS_NOTE,
                "required": ["prompt", "input_reference"],
                "properties": {
                    **_CREATE_FIELDS,
                    "input_reference": {
                        "type": "string",
                        "format": "binary",
                        "description": "The reference image (first frame): JPEG, PNG, BMP or WEBP.",
                    },
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "description": _WAN_OPTIONS_NOTE,
                "required": ["prompt", "input_reference"],
                "properties": {
                    **_CREATE_FIELDS,
                    "input_reference": {
                        "type": "object",
                        "required": ["image_url"],
                        "properties": {
                            "image_url": {
                                "type": "string",
                                "description": "An http(s) URL (fetched by the gateway) or a data: URI.",
                            }
                        },
                    },
                },
            }
        },
    },
}
_REMIX_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["prompt"],
                "description": "Wan options may be given too, to change them: "
                + ", ".join(translate.WAN_OPTIONS)
                + ".",
                "properties": {"prompt": {"type": "string", "description": "The new prompt."}},
            }
        }
    },
}


async def _submit(
    jobs: JobService, body: JobCreate, caller: Principal, key: str | None, response: Response
) -> Created:
    try:
        created = await jobs.submit(
            body, owner=caller.tenant, api_key=caller.key_name, limits=caller.limits, idempotency_key=key
        )
    except FieldError as exc:
        raise renamed(exc) from None
    if created.window is not None:
        response.headers.update(created.window.headers())
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"{PREFIX}/{created.job.id}"
    return created


def _video(jobs: JobService, job: Job, live: Live | None) -> Video:
    return translate.video(job, expires_at=jobs.expires_at(job), live=live)


async def _answer(jobs: JobService, job: Job, response: Response) -> Video:
    wait = await jobs.poll_after_s(job)
    if wait is not None:
        response.headers["openai-poll-after-ms"] = str(max(1, round(wait * 1000)))
    return _video(jobs, job, (await jobs.live([job])).get(job.id))


@router.post(
    "",
    response_model=Video,
    summary="Create a video (OpenAI's videos.create)",
    openapi_extra={"requestBody": _CREATE_BODY},
    responses={200: {"headers": _POLL_AFTER}, **errors(400, 401, 402, 409, 429, 503)},
)
async def create_video(
    request: Request,
    jobs: JobsDep,
    caller: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Video:
    """A job from OpenAI's parameters: `prompt`, `model` (a Wan model, default `wan2.6-i2v-flash`),
    `seconds`, `size` and `input_reference` — the image, uploaded (multipart, as the SDK sends it) or
    `{"image_url": …}` — plus any Wan option. The same job as `POST /v1/jobs` makes."""
    params, from_form = await create_params(request)
    body = translate.job_create(params, lax=from_form)
    created = await _submit(jobs, body, caller, idempotency_key, response)
    return await _answer(jobs, created.job, response)


@router.get(
    "",
    response_model=VideoList,
    summary="List videos (OpenAI's videos.list)",
    responses=errors(400, 401),
)
async def list_videos(
    jobs: JobsDep,
    caller: PrincipalDep,
    after: Annotated[
        str | None, Query(max_length=64, description="The last id of the page before (`last_id`).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    order: Annotated[Literal["asc", "desc"], Query(description="By creation time.")] = "desc",
) -> VideoList:
    cursor = None
    if after:
        try:
            cursor = await jobs.cursor_after(after, owner=caller.tenant)
        except NotFound:
            raise FieldError("after", f"no video {after!r}") from None
    page = await jobs.page(
        owner=caller.tenant, statuses=None, limit=limit, cursor=cursor, oldest_first=order == "asc"
    )
    live = await jobs.live(page.jobs)
    data = [_video(jobs, job, live.get(job.id)) for job in page.jobs]
    return VideoList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=page.next_cursor is not None,
    )


@router.get(
    "/{video_id}",
    response_model=Video,
    summary="Retrieve a video (OpenAI's videos.retrieve)",
    responses={200: {"headers": _POLL_AFTER}, **errors(401, 404)},
)
async def retrieve_video(video_id: str, jobs: JobsDep, caller: PrincipalDep, response: Response) -> Video:
    return await _answer(jobs, await jobs.get(video_id, owner=caller.tenant), response)


@router.delete(
    "/{video_id}",
    response_model=VideoDeleted,
    summary="Delete a video (OpenAI's videos.delete)",
    responses=errors(401, 404, 409),
)
async def delete_video(video_id: str, jobs: JobsDep, caller: PrincipalDep) -> VideoDeleted:
    """`DELETE /v1/jobs/{id}`: a finished video and its stored files go; it is a 404 from then on. One
    still queued or in progress is a 409 (`job_not_finished`): cancel it first
    (`POST /v1/jobs/{id}/cancel`)."""
    await jobs.delete(video_id, owner=caller.tenant)
    return VideoDeleted(id=video_id)


@router.get(
    "/{video_id}/content",
    summary="Download the video, its thumbnail or its sprite sheet (OpenAI's videos.download_content)",
    response_class=Response,
    responses={
        200: {
            "content": {"video/mp4": {}, "image/jpeg": {}},
            "description": "The MP4 (`variant=video`), or a JPEG (`thumbnail`, `spritesheet`)",
        },
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        307: {"description": "S3 storage with `S3_CONTENT_MODE=redirect`: a presigned URL"},
        416: {"description": "Range not satisfiable"},
        **errors(400, 401, 404, 409, 410, 503),
    },
)
async def download_content(
    video_id: str,
    request: Request,
    jobs: JobsDep,
    storage: StorageDep,
    renditions: RenditionsDep,
    caller: PrincipalDep,
    variant: Annotated[
        Literal["video", "thumbnail", "spritesheet"],
        Query(description="`video` (the MP4), `thumbnail` (a JPEG poster frame), `spritesheet` (JPEG)."),
    ] = "video",
    if_none_match: IfNoneMatchHeader = None,
    range_header: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Response:
    """The stored MP4 (`Range`, `ETag` as `GET /v1/jobs/{id}/content`), or a JPEG rendered from it once
    and stored beside it: `thumbnail` a poster frame, `spritesheet` frames across the video in a grid.
    `409` before the video is completed, `410` once STORAGE_RETENTION_S removed it."""
    del if_none_match, range_header, if_range  # read by serve_stored; declared for the API reference
    job = await jobs.get(video_id, owner=caller.tenant)
    return await serve_job_file(request, storage, renditions, job, variant)


@router.post(
    "/{video_id}/remix",
    response_model=Video,
    summary="Remix a video with a new prompt (OpenAI's videos.remix)",
    openapi_extra={"requestBody": _REMIX_BODY},
    responses={200: {"headers": _POLL_AFTER}, **errors(400, 401, 402, 404, 409, 429, 503)},
)
async def remix_video(
    video_id: str,
    request: Request,
    jobs: JobsDep,
    caller: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Video:
    """A new video from the same reference image and parameters as `video_id`, with a new `prompt`;
    `remixed_from_video_id` names the source. The image is the one sent upstream for the source (the
    bytes the gateway checked, as a data: URI), so a remix renders the same first frame even when the
    source's image URL has changed or gone."""
    params, from_form = await create_params(request)
    prompt = params.pop("prompt", None)
    if not isinstance(prompt, str) or not prompt:
        raise FieldError("prompt", "a remix needs the new prompt")
    source, sent = await jobs.get_with_body(video_id, owner=caller.tenant)
    body = translate.remix_create(source, sent_images(sent), prompt, params, lax=from_form)
    created = await _submit(jobs, body, caller, idempotency_key, response)
    return await _answer(jobs, created.job, response)
