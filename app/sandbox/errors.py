"""DashScope error envelopes (§5.1) and OSS-style XML errors, plus the exact messages of §5.2 and §9."""

from __future__ import annotations

import uuid
from typing import Any
from xml.sax.saxutils import escape

from starlette.responses import JSONResponse, Response

# The messages the real service (or the protocol document's [EMU] notes) use, verbatim.
NO_API_KEY = "No API-key provided."
INVALID_API_KEY = "Invalid API-key provided."
SYNC_NOT_SUPPORTED = "current user api does not support synchronous calls"
MODEL_NOT_EXIST = "Model not exist."
URL_ERROR = "url error, please check url!"
BAD_REQUEST = "Required parameter(s) missing or invalid, please check the request parameters."
MEDIA_FORMAT = "The media format is not supported or incorrect for the data inspection."
MEDIA_DOWNLOAD = "Unable to download the media resource during the data inspection process."
MEDIA_NOT_FOUND = "Failed to find the requested media resource during the data inspection process."
INVALID_URL = "Invalid URL provided in your request."
CANCEL_REFUSED = "Failed to cancel the task, please confirm if the task is in PENDING status."
RATE_LIMITED = "Requests rate limit exceeded, please try again later."
NOT_FOUND = "Not found!"
NO_SUCH_KEY = "The specified key does not exist."
SIGNATURE_MISMATCH = "The request signature we calculated does not match the signature you provided."
INTERNAL = "An internal error has occured, please try again later or contact service support."

#: code and message an injected HTTP status answers with, unless the fault names its own code.
STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidParameter", BAD_REQUEST),
    401: ("InvalidApiKey", INVALID_API_KEY),
    403: ("AccessDenied", "Access denied."),
    404: ("NotFound", NOT_FOUND),
    408: ("RequestTimeOut", "Request timed out, please try again later."),
    429: ("Throttling.RateQuota", RATE_LIMITED),
    500: ("InternalError", INTERNAL),
    503: ("ModelUnavailable", "Model is unavailable, please try again later."),
}

#: Statuses a proxy in front of the service answers with an HTML page rather than JSON (§5.1, A.10).
HTML_STATUSES: dict[int, str] = {502: "Bad Gateway", 504: "Gateway Timeout"}

#: Messages for well-known codes (used by injected faults and FAILED tasks).
CODE_MESSAGES: dict[str, str] = {
    "DataInspectionFailed": "Output data may contain inappropriate content.",
    "IPInfringementSuspect": "Input data is suspected of being involved in IP infringement.",
    "InternalError": INTERNAL,
    "InternalError.Timeout": "An internal timeout error has occured during execution, please try again "
    "later or contact service support.",
    "InvalidParameter": "The size is not match the input image.",
    "ModelServingError": "Too many requests. Your requests are being throttled due to system capacity "
    "limits, please try again later.",
    "Throttling": "Requests throttling triggered.",
    "Throttling.RateQuota": RATE_LIMITED,
    "Throttling.AllocationQuota": "Allocated quota exceeded, please increase your quota limit.",
    "ModelUnavailable": "Model is unavailable, please try again later.",
    "Arrearage": "Access denied, please make sure your account is in good standing.",
}


def new_request_id() -> str:
    return str(uuid.uuid4())


class ApiError(Exception):
    """A DashScope error answer: HTTP status plus the flat `{code, message, request_id}` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str, code: str = "InvalidParameter") -> ApiError:
    return ApiError(400, code, message)


def error_body(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": request_id or new_request_id()}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


def status_error(status: int, code: str | None = None, request_id: str | None = None) -> Response:
    """The answer for an injected HTTP status: JSON envelope, or an HTML page for 502/504."""
    if status in HTML_STATUSES and code is None:
        return Response(f"<html>{HTML_STATUSES[status]}</html>", status_code=status, media_type="text/html")
    default_code, default_message = STATUS_ERRORS.get(
        status, ("InternalError", INTERNAL) if status >= 500 else ("InvalidParameter", BAD_REQUEST)
    )
    chosen = code or default_code
    message = CODE_MESSAGES.get(chosen, default_message) if code else default_message
    return JSONResponse(error_body(chosen, message, request_id), status_code=status)


def oss_error(status: int, code: str, message: str, **extra: str) -> Response:
    """An OSS-style XML error, as the result-file host (an OSS bucket in reality) answers."""
    fields = {"Code": code, "Message": message, "RequestId": new_request_id().replace("-", "").upper()}
    fields.update(extra)
    fields["HostId"] = "sandbox.oss.local"
    inner = "".join(f"  <{name}>{escape(value)}</{name}>\n" for name, value in fields.items())
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n{inner}</Error>\n'
    return Response(body, status_code=status, media_type="application/xml")
