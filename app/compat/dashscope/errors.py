"""Errors of the facade in DashScope's shape: `{"request_id", "code", "message"}` with its codes and HTTP
statuses (docs/PROTOCOL.md §5.1–5.2), which the SDKs turn into `status_code/code/message`.

Scoped to `/api/v1`: `DashScopeRoute` (the route class of the facade's router) catches whatever its
endpoint raises — the core's `AppError`s (problem+json elsewhere), request validation, database outages,
bugs — and answers it here, so the native `/v1` API keeps RFC 9457 unchanged. What no route answers
under the prefix (an unknown path, a 405, the body limit's 413/408) goes through `render`, the prefix's
dialect for `app.errors.install_handlers` and `BodySizeLimit`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from app.api.routing import StrictRoute
from app.db.availability import is_unavailable
from app.errors import DATABASE_RETRY_AFTER_S, AppError, ErrorInfo, FieldError, field_name
from app.tenants.auth import Forbidden, Unauthorized

log = logging.getLogger(__name__)

PREFIX = "/api/v1"

# DashScope's own messages, verbatim (§2.1, §4.1, §5.2).
NO_API_KEY = "No API-key provided."
INVALID_API_KEY = "Invalid API-key provided."
SYNC_NOT_SUPPORTED = "current user api does not support synchronous calls"
URL_ERROR = "url error, please check url!"
CANCEL_REFUSED = "Failed to cancel the task, please confirm if the task is in PENDING status."
MEDIA_FORMAT = "The media format is not supported or incorrect for the data inspection."
MEDIA_NOT_FOUND = "Failed to find the requested media resource during the data inspection process."
NOT_FOUND = "Not found!"
INTERNAL = "An internal error has occured, please try again later or contact service support."

#: The core's request fields (`POST /v1/jobs`) by their DashScope names, for messages that name a field.
FIELD_NAMES = {
    "model": "model",
    **{name: f"input.{name}" for name in ("prompt", "negative_prompt", "audio_url", "template")},
    "reference_image": "input.img_url",  # input.first_frame_url on the kf2v path
    "last_frame_image": "input.last_frame_url",
    **{
        name: f"parameters.{name}"
        for name in (
            "resolution",
            "size",
            "duration",
            "seed",
            "audio",
            "shot_type",
            "prompt_extend",
            "watermark",
            "fps",
        )
    },
}

#: Which quota a 429 of `jobs/admission.py` hit → DashScope's throttling code for that kind of limit.
QUOTA_CODES = {
    "submits_per_minute": "Throttling.RateQuota",
    "video_seconds_per_day": "Throttling.AllocationQuota",
    "max_active_jobs": "Throttling",
}

#: Any other status of the core → DashScope's code for it (§5.2); 422 becomes 400 InvalidParameter.
STATUS_CODES = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    402: "Arrearage",
    403: "AccessDenied",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeOut",
    409: "Conflict",
    413: "RequestTooLarge",
    429: "Throttling",
    503: "ServiceUnavailable",
}


class DashScopeError(Exception):
    """An answer in DashScope's words, raised by the facade itself."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def invalid(field: str, message: str) -> DashScopeError:
    return DashScopeError(400, "InvalidParameter", f"{field}: {message}")


def new_request_id() -> str:
    """A UUID, as DashScope's request ids are."""
    return str(uuid.uuid4())


def envelope(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"request_id": new_request_id(), "code": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def dashscope_name(field: str, *, kf2v: bool = False) -> str:
    """A core field name (`reference_image`, `webhook_events[0]`) as the facade's client wrote it."""
    head, _, rest = field.partition(".")
    base = head.split("[", 1)[0]
    name = FIELD_NAMES.get(base)
    if name is None:
        return field
    if kf2v and base == "reference_image":
        name = "input.first_frame_url"
    return name + head[len(base) :] + (f".{rest}" if rest else "")


def _pydantic_message(errors: list[Any], *, kf2v: bool) -> str:
    first: dict[str, Any] = dict(errors[0]) if errors else {"loc": (), "msg": "invalid"}
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error")
        return "the request body is not valid JSON" + (f": {reason}" if reason else "")
    field = dashscope_name(field_name(loc), kf2v=kf2v) if loc else "body"
    if first.get("type") == "missing":
        return f"Field required: {field}"
    return f"{field}: {first.get('msg', 'invalid value')}"


def translate(exc: Exception, *, kf2v: bool = False) -> JSONResponse:
    """Any error of a facade endpoint as DashScope would answer it."""
    if isinstance(exc, DashScopeError):
        return envelope(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, RequestValidationError | ValidationError):
        return envelope(400, "InvalidParameter", _pydantic_message(list(exc.errors()), kf2v=kf2v))
    if isinstance(exc, FieldError):
        error = exc.errors[0]
        return envelope(
            400, "InvalidParameter", f"{dashscope_name(error['field'], kf2v=kf2v)}: {error['message']}"
        )
    if isinstance(exc, Unauthorized):
        message = NO_API_KEY if exc.code == "missing_api_key" else INVALID_API_KEY
        return envelope(401, "InvalidApiKey", message)
    if isinstance(exc, Forbidden):
        return envelope(403, "AccessDenied", exc.detail or "Access denied.")
    if isinstance(exc, AppError):
        return _app_error(exc.status, exc.detail or exc.title, dict(exc.headers), exc.extra)
    if isinstance(exc, StarletteHTTPException):
        message = NOT_FOUND if exc.status_code == 404 else str(exc.detail)
        code = STATUS_CODES.get(exc.status_code, "InvalidParameter")
        return envelope(exc.status_code, code, message, dict(exc.headers or {}))
    if is_unavailable(exc):
        log.warning("database unavailable on the DashScope facade: %s", exc)
        return envelope(
            503,
            "ServiceUnavailable",
            "the database cannot be used right now; retry after Retry-After",
            {"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    log.error("unhandled error on the DashScope facade", exc_info=exc)
    return envelope(500, "InternalError", INTERNAL)


def render(_request: Request, error: ErrorInfo) -> Response:
    """An error answered outside the facade's routes under `/api/v1` — the body limit's 413/408, an
    unknown path or method — in DashScope's shape (registered as the prefix's dialect with
    `errors.install_handlers` and `BodySizeLimit`)."""
    if error.status == 404:
        return envelope(404, "NotFound", NOT_FOUND, error.headers)
    return _app_error(error.status, error.detail or error.title, error.headers, error.extra)


def _app_error(status: int, message: str, headers: dict[str, str], extra: dict[str, Any]) -> JSONResponse:
    if status == 429:
        quota = str(extra.get("quota", "quota"))
        return envelope(429, QUOTA_CODES.get(quota, "Throttling"), f"{quota}: {message}", headers)
    if status in (400, 422):
        return envelope(400, "InvalidParameter", message, headers)
    if status >= 500:
        if status == 503:
            return envelope(503, "ServiceUnavailable", message, headers)
        return envelope(status, "InternalError", INTERNAL, headers)
    return envelope(status, STATUS_CODES.get(status, "InvalidParameter"), message, headers)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DashScopeRoute(StrictRoute):
    """`StrictRoute` (HEAD, authentication before the body, strict JSON), with every error of the endpoint
    — its caller's key included — answered in DashScope's shape."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        kf2v = "image2video" in self.path

        async def dashscope_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return translate(exc, kf2v=kf2v)

        return dashscope_handler
