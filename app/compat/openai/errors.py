"""OpenAI's error envelope for every error under `/v1/videos`: `{"error": {message, type, param, code}}`.

Registered with `app.errors.install_handlers` for the prefix, so every error there — a refused
parameter, a missing key, an unknown path, a quota, a database outage — is rendered in it, by the same
handlers that answer problem+json everywhere else. Field errors, OpenAI's `400`, carry `param`, in
OpenAI's names (`seconds`, `input_reference`); `code` is the gateway's stable machine code.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from app.compat.openai.schemas import OpenAIError, OpenAIErrorDetail
from app.errors import ErrorInfo, FieldError

PREFIX = "/v1/videos"

#: The job API's field names as OpenAI's parameters name them.
PARAM_NAMES = {"reference_image": "input_reference", "duration": "seconds"}

_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return _TYPES.get(status, "invalid_request_error")


def param_name(field: str) -> str:
    """`reference_image` → `input_reference`; `duration` → `seconds`; others (and their `[…]`) as they are."""
    head, bracket, rest = field.partition("[")
    return PARAM_NAMES.get(head, head) + bracket + rest


def renamed(exc: FieldError) -> FieldError:
    """The job service's field error, naming OpenAI's parameter."""
    field = exc.errors[0]["field"]
    message = exc.errors[0]["message"]
    return FieldError(param_name(field), message, code=exc.code)


def render(_request: Request, error: ErrorInfo) -> Response:
    # OpenAI answers a refused parameter with 400 (the SDK's BadRequestError), never 422.
    status = 400 if error.status == 422 else error.status
    field = error.extra.get("field")
    param = param_name(field) if isinstance(field, str) and field != "body" else None
    body = OpenAIError(
        error=OpenAIErrorDetail(
            message=error.detail or error.title, type=error_type(status), param=param, code=error.code
        )
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=error.headers)
