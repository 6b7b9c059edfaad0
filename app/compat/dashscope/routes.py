"""The facade's endpoints under `/api/v1`, DashScope's paths (docs/PROTOCOL.md §1.2), each a thin
translation onto `JobService` (submit, get, cancel, search) and the upload store.

- `POST /api/v1/services/aigc/video-generation/video-synthesis` (i2v models) and
  `POST /api/v1/services/aigc/image2video/video-synthesis` (kf2v models), `X-DashScope-Async: enable`
  required: the body becomes a `POST /v1/jobs` body, validated by the core (same registry, same limits,
  no upstream call). The task id is the job id: every task is a job, visible at `/v1/jobs` too.
- `GET /api/v1/tasks/{task_id}`: an unknown id, or another tenant's, is DashScope's `UNKNOWN` (HTTP 200).
- `POST /api/v1/tasks/{task_id}/cancel`, `GET /api/v1/tasks` (DashScope's list parameters, flat `data`).
- `GET /api/v1/uploads?action=getPolicy&model=` and `POST /api/v1/uploads/oss` (uploads.py).

Trailing slashes are accepted on the task routes (the SDK's aiohttp flavour adds them, §1.2).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from app.api.auth import PrincipalDep
from app.api.deps import JobsDep, PresenterDep
from app.compat.dashscope import wire
from app.compat.dashscope.errors import (
    CANCEL_REFUSED,
    MEDIA_FORMAT,
    MEDIA_NOT_FOUND,
    SYNC_NOT_SUPPORTED,
    URL_ERROR,
    DashScopeError,
    DashScopeRoute,
    invalid,
    new_request_id,
)
from app.compat.dashscope.uploads import UploadRefused, UploadStore
from app.errors import Conflict, NotFound
from app.jobs import repository
from app.jobs.schemas import JobCreate
from app.providers.dashscope.capabilities import Endpoint, get_model

#: The key of the facade's `UploadStore` in the ASGI state the lifespan yields.
STATE_KEY = "dashscope_uploads"
TAG = "DashScope-compatible"
#: DashScope's list window when neither end is given, and the other end when only one is (§4.2).
LIST_WINDOW = timedelta(hours=24)
PAGE_SIZE_MAX = 100
#: A cancel that meets a submission in flight waits for it to settle, this long at a time, this often.
CANCEL_SETTLE_S = 2.0
CANCEL_SETTLE_TRIES = 3

router = APIRouter(prefix="/api/v1", tags=[TAG], route_class=DashScopeRoute)

_ERROR = {
    "description": "DashScope's error envelope",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "request_id": {"type": "string"},
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            }
        }
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {**_ERROR, "description": f"{_ERROR['description']}: {what}"}
    for status, what in {
        400: "`InvalidParameter` (the message names the field), `UnsupportedOperation`",
        401: "`InvalidApiKey`",
        402: "`Arrearage`: the job's estimate does not fit the key's budget (the message says by how much)",
        403: "`AccessDenied`",
        429: "`Throttling…` (the message names the quota)",
        503: "`ServiceUnavailable`",
    }.items()
}
_RAW_BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]+={0,2}")


async def get_uploads(request: Request) -> UploadStore:
    return cast(UploadStore, getattr(request.state, STATE_KEY))


UploadsDep = Annotated[UploadStore, Depends(get_uploads)]


async def require_async(
    x_dashscope_async: Annotated[
        str | None,
        Header(alias="X-DashScope-Async", description="Must be `enable`: video synthesis is async only."),
    ] = None,
) -> None:
    if (x_dashscope_async or "").strip().lower() != "enable":
        raise DashScopeError(403, "AccessDenied", SYNC_NOT_SUPPORTED)


OssResolveHeader = Annotated[
    str | None,
    Header(
        alias="X-DashScope-OssResourceResolve",
        description="`enable` when an input is an `oss://` key from `GET /api/v1/uploads`.",
    ),
]
IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="As on `POST /v1/jobs`: a retry with the same key and body returns the same task.",
    ),
]


async def _image(
    value: str | None, field: str, *, owner: str | None, resolve: bool, uploads: UploadStore
) -> str | None:
    """An image input as the core takes it: `oss://` keys resolved to the uploaded bytes (a `data:` URI),
    raw base64 (what the Vercel AI SDK sends for bytes) made a `data:` URI; URLs and data URIs as given."""
    if value is None:
        return None
    if value[:6].lower() == "oss://":
        if not resolve:
            raise DashScopeError(
                400,
                "InvalidParameter.DataInspection",
                f"{MEDIA_FORMAT} ({field}: an oss:// URL needs the header X-DashScope-OssResourceResolve: "
                "enable)",
            )
        found = await uploads.resolve(owner, value[6:])
        if found is None:
            raise DashScopeError(
                400,
                "InvalidParameter.DataInspection",
                f"{MEDIA_NOT_FOUND} ({field}: no file uploaded with this API key under that key, or it "
                "expired after 48 h)",
            )
        return found.data_uri()
    if len(value) >= 16 and _RAW_BASE64.fullmatch(value):
        return "data:;base64," + value
    return value


async def _create(
    endpoint: Endpoint,
    body: wire.CreateTask,
    jobs: JobsDep,
    caller: PrincipalDep,
    uploads: UploadStore,
    oss_resolve: str | None,
    idempotency_key: str | None,
) -> JSONResponse:
    spec = get_model(body.model)
    if spec is not None and spec.endpoint is not endpoint:
        raise invalid("model", f"{URL_ERROR} ({body.model} is served at POST /api/v1{spec.endpoint.path})")
    kf2v = endpoint is Endpoint.KF2V
    given = body.input
    if given.audio_url and given.audio_url[:6].lower() == "oss://":
        raise invalid(
            "input.audio_url", "only images can be uploaded to this gateway; give the audio as an http(s) URL"
        )
    resolve = (oss_resolve or "").strip().lower() == "enable"
    first_name = "input.first_frame_url" if kf2v else "input.img_url"
    owner = caller.tenant
    first = given.first_frame_url if kf2v else given.img_url
    reference = await _image(first, first_name, owner=owner, resolve=resolve, uploads=uploads)
    last = None
    if kf2v:
        last_name = "input.last_frame_url"
        last = await _image(given.last_frame_url, last_name, owner=owner, resolve=resolve, uploads=uploads)
    job_body = JobCreate.model_validate(wire.to_job_body(body, reference=reference, last_frame=last))
    created = await jobs.submit(
        job_body,
        owner=owner,
        api_key=caller.key_name,
        limits=caller.limits,
        idempotency_key=idempotency_key,
    )
    headers = created.window.headers() if created.window is not None else {}
    output = {"task_id": created.job.id, "task_status": wire.TASK_STATUS[created.job.status]}
    return JSONResponse({"request_id": new_request_id(), "output": output}, headers=headers)


_CREATE_DOC = {
    "response_class": JSONResponse,
    "responses": {
        200: {"description": "`{request_id, output: {task_id, task_status: PENDING}}`"},
        **_ERRORS,
    },
}


@router.post(
    "/services/aigc/video-generation/video-synthesis",
    summary="Create an image-to-video task (DashScope's i2v path)",
    dependencies=[Depends(require_async)],
    **_CREATE_DOC,  # type: ignore[arg-type]
)
async def create_i2v(
    body: wire.CreateTask,
    jobs: JobsDep,
    caller: PrincipalDep,
    uploads: UploadsDep,
    oss_resolve: OssResolveHeader = None,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """DashScope's create for the first-frame models (`input.img_url`). The task is a gateway job: it is
    submitted upstream by the gateway's loop, and its video is copied into the gateway's storage."""
    return await _create(Endpoint.I2V, body, jobs, caller, uploads, oss_resolve, idempotency_key)


@router.post(
    "/services/aigc/image2video/video-synthesis",
    summary="Create a first+last-frame task (DashScope's kf2v path)",
    dependencies=[Depends(require_async)],
    **_CREATE_DOC,  # type: ignore[arg-type]
)
async def create_kf2v(
    body: wire.CreateTask,
    jobs: JobsDep,
    caller: PrincipalDep,
    uploads: UploadsDep,
    oss_resolve: OssResolveHeader = None,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """DashScope's create for the kf2v models (`input.first_frame_url`, `input.last_frame_url`)."""
    return await _create(Endpoint.KF2V, body, jobs, caller, uploads, oss_resolve, idempotency_key)


@router.get(
    "/tasks/{task_id}",
    summary="Query a task (DashScope's shape)",
    response_class=JSONResponse,
    responses={
        200: {
            "description": "`{request_id, output: {task_id, task_status, submit_time, …, video_url}, "
            "usage}`; `task_status: UNKNOWN` for an id this key does not own"
        },
        **_ERRORS,
    },
)
@router.get("/tasks/{task_id}/", include_in_schema=False)
async def get_task(task_id: str, jobs: JobsDep, presenter: PresenterDep, caller: PrincipalDep) -> Response:
    """`video_url` is the gateway's durable URL of the stored MP4 (`/v1/jobs/{id}/content`), set only
    once the copy exists. Times are the gateway's, in UTC."""
    try:
        job = await jobs.get(task_id, owner=caller.tenant)
    except NotFound:
        return JSONResponse(wire.unknown_task(task_id, new_request_id()))
    return JSONResponse(wire.task_body(job, presenter, new_request_id()))


@router.post(
    "/tasks/{task_id}/cancel",
    summary="Cancel a PENDING task",
    response_class=JSONResponse,
    responses={200: {"description": "`{request_id}`"}, **_ERRORS},
)
@router.post("/tasks/{task_id}/cancel/", include_in_schema=False)
async def cancel_task(task_id: str, jobs: JobsDep, caller: PrincipalDep) -> Response:
    """As upstream, only a PENDING task can be canceled; anything else is `400 UnsupportedOperation`.
    A task the gateway is handing upstream at this very moment is PENDING to the client: the cancel waits
    (a few seconds at most) for the hand-over to settle instead of answering "try again"."""
    for attempt in range(CANCEL_SETTLE_TRIES):
        try:
            await jobs.cancel(task_id, owner=caller.tenant)
        except NotFound:
            raise DashScopeError(400, "UnsupportedOperation", CANCEL_REFUSED) from None
        except Conflict as exc:
            if exc.code != "submission_in_progress":
                raise DashScopeError(
                    400, "UnsupportedOperation", f"{CANCEL_REFUSED} ({exc.detail})"
                ) from None
            if attempt == CANCEL_SETTLE_TRIES - 1:
                raise DashScopeError(
                    503, "ServiceUnavailable", exc.detail or "", headers=exc.headers
                ) from None
            await jobs.wait_for_event(await jobs.get(task_id, owner=caller.tenant), CANCEL_SETTLE_S)
        else:
            break
    return JSONResponse({"request_id": new_request_id()})


def _list_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise invalid(name, "must look like 20250901000000 (YYYYMMDDhhmmss, UTC)") from None


@router.get(
    "/tasks",
    summary="List tasks (DashScope's shape)",
    response_class=JSONResponse,
    responses={
        200: {"description": "`{request_id, total, total_page, page_no, page_size, data: [...]}`"},
        **_ERRORS,
    },
)
@router.get("/tasks/", include_in_schema=False)
async def list_tasks(
    jobs: JobsDep,
    caller: PrincipalDep,
    task_id: Annotated[str | None, Query(max_length=64)] = None,
    start_time: Annotated[str | None, Query(description="YYYYMMDDhhmmss (UTC)")] = None,
    end_time: Annotated[str | None, Query(description="YYYYMMDDhhmmss (UTC)")] = None,
    model_name: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(description="PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED")] = None,
    page_no: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = 10,
    api_key_id: Annotated[str | None, Query(description="Accepted and ignored (SDK pass-through).")] = None,
    region: Annotated[str | None, Query(description="Accepted and ignored (SDK pass-through).")] = None,
) -> Response:
    """Without `start_time`/`end_time`, the last 24 h; with one, 24 h from or up to it (as upstream)."""
    since, until = _list_time(start_time, "start_time"), _list_time(end_time, "end_time")
    if since is None and until is None:
        until = datetime.now(UTC)
    if since is None:
        assert until is not None
        since = until - LIST_WINDOW
    if until is None:
        until = since + LIST_WINDOW
    statuses = None
    if status is not None:
        if status.upper() not in wire.STATUS_FILTER:
            raise invalid("status", f"one of {', '.join(wire.STATUS_FILTER)}")
        statuses = wire.STATUS_FILTER[status.upper()]
    request_id = new_request_id()
    rows: list[Any] = []
    total = 0
    if statuses != []:
        found, total = await jobs.search(
            repository.Search(
                owner=caller.tenant,
                since=since,
                until=until + timedelta(seconds=1),  # the end's whole second
                statuses=statuses,
                model=model_name,
                job_id=task_id,
                offset=(page_no - 1) * page_size,
                limit=page_size,
            )
        )
        for job in found:
            spec = get_model(job.model)
            endpoint = spec.endpoint.value if spec is not None else Endpoint.I2V.value
            rows.append(wire.list_row(job, endpoint=endpoint))
    return JSONResponse(
        {
            "request_id": request_id,
            "total": total,
            "total_page": math.ceil(total / page_size),
            "page_no": page_no,
            "page_size": page_size,
            "data": rows,
        }
    )


@router.get(
    "/uploads",
    summary="Get a temporary-upload policy (for the SDK's file:// inputs)",
    response_class=JSONResponse,
    responses={
        200: {
            "description": "`{request_id, data: {policy, signature, upload_dir, upload_host, …}}`: "
            "`upload_host` is this gateway's `POST /api/v1/uploads/oss`"
        },
        **_ERRORS,
    },
)
async def get_policy(
    caller: PrincipalDep,
    uploads: UploadsDep,
    action: Annotated[str, Query(description="`getPolicy`")],
    model: Annotated[str, Query(max_length=64, description="The model the file is for.")],
) -> Response:
    if action != "getPolicy":
        raise invalid("action", "only getPolicy is supported")
    data = await uploads.issue(caller.tenant, model)
    return JSONResponse({"request_id": new_request_id(), "data": data})


_FORM_FIELDS = ("OSSAccessKeyId", "policy", "Signature", "key", "file")


@router.post(
    "/uploads/oss",
    summary="Upload a file under a policy (OSS's form POST)",
    response_class=Response,
    responses={
        200: {"description": "Stored (empty body); name it as `oss://<key>` in a create for 48 h"},
        204: {"description": "Stored, when `success_action_status` is not 200/201"},
        400: {"description": "OSS's XML error", "content": {"application/xml": {}}},
        403: {
            "description": "OSS's XML error (signature, expired policy)",
            "content": {"application/xml": {}},
        },
        409: {"description": "`FileAlreadyExists`", "content": {"application/xml": {}}},
    },
)
async def upload(request: Request, uploads: UploadsDep) -> Response:
    """`multipart/form-data` with `OSSAccessKeyId`, `Signature`, `policy`, `key`, `x-oss-content-type`,
    `success_action_status` and the `file` last, as the SDK sends it. No API key: the policy's signature
    is the credential (as at OSS); the file belongs to the key that asked for the policy."""
    try:
        async with request.form(max_files=1, max_fields=32) as form:
            missing = [name for name in _FORM_FIELDS if name not in form]
            if missing:
                raise UploadRefused(400, "InvalidArgument", f"The form field {missing[0]} is missing.")
            file = form["file"]
            if not isinstance(file, UploadFile):
                raise UploadRefused(400, "InvalidArgument", "The form field file must be a file.")
            data = await file.read(uploads.max_bytes + 1)
            content_type = form.get("x-oss-content-type") or file.content_type
            await uploads.accept(
                policy=str(form["policy"]),
                signature=str(form["Signature"]),
                key=str(form["key"]),
                content_type=str(content_type) if content_type else None,
                data=data,
            )
            status = str(form.get("success_action_status", ""))
    except UploadRefused as refused:
        return refused.response()
    return Response(status_code=int(status) if status in ("200", "201") else 204)


def install(app: FastAPI) -> None:
    """The facade's routes (its answers for unknown paths under `/api/v1` are `errors.render`, installed
    as the prefix's error dialect by `app.main`)."""
    app.include_router(router)
