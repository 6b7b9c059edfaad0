"""One error base class that carries its HTTP status and code, and the handlers that turn every error into
RFC 9457 `application/problem+json` with a stable machine `code` (validation errors name the field).

A drop-in surface that must answer in another API's error shape (the OpenAI-compatible `/v1/videos`)
registers an `ErrorRenderer` for its path prefix: the same errors, the same handlers, its own envelope.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from app.db.availability import DRIVER_CONNECTION_ERRORS, DatabaseUnavailable, is_unavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: What a client is told to wait (seconds) while the database is unreachable.
DATABASE_RETRY_AFTER_S = 5


class AppError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        if code:
            self.code = code
        if title:
            self.title = title
        self.headers = headers or {}
        self.extra = extra or {}


class FieldError(AppError):
    """A request field is wrong. `field` uses the request's own names (`duration`, `webhook_events[0]`)."""

    status = 422
    code = "validation_error"
    title = "Invalid request"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code=code)
        self.errors = [{"field": field, "message": message}]
        self.extra = {"field": field, "errors": self.errors}


class BadRequest(AppError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Gone(AppError):
    status = 410
    code = "gone"
    title = "Gone"


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": f"urn:wan-gateway:problem:{code}", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body["code"] = code
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


@dataclass(frozen=True)
class ErrorInfo:
    """One error as every handler sees it, before it is rendered."""

    status: int
    code: str
    title: str
    detail: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Problem members beyond the standard ones (`field`, `errors`, quota figures, …).
    extra: dict[str, Any] = field(default_factory=dict)


#: Renders an error for the paths under one prefix (see `install_handlers`).
ErrorRenderer = Callable[[Request, ErrorInfo], Response]


def field_name(loc: Sequence[int | str]) -> str:
    """`("body", "webhook_events", 0)` → `webhook_events[0]`; `("query", "limit")` → `limit`."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            text = str(part)
            text = text if len(text) <= 100 else text[:100] + "…"  # an unknown field may be any key
            name += f".{text}" if name else text
    return name or "body"


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = err.get("loc", ())
        kind = err.get("type", "")
        field = "body" if kind == "json_invalid" else field_name(loc)
        message = str(err.get("msg", "invalid value"))
        if kind == "extra_forbidden":
            what = "query parameter" if loc and loc[0] == "query" else "field"
            message = f"unknown {what} (see the API reference for the accepted {what}s)"
        if kind == "json_invalid":
            reason = (err.get("ctx") or {}).get("error")
            message = f"not valid JSON: {reason}" if reason else "not valid JSON"
        if kind == "missing" and field == "body":
            message = "a JSON object body is required"
        errors.append({"field": field, "message": message, "type": kind})
    return errors


_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def allowed_methods(request: Request) -> str | None:
    """Every method of the resource, for a 405's `Allow`, as the API documents them. Starlette names only
    those of the first route that matched the path, but `GET /v1/jobs` and `POST /v1/jobs` are two routes
    of one resource. None for paths the OpenAPI does not describe (Starlette's answer stands)."""
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in item if method in _METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) or None


def render_error(request: Request, error: ErrorInfo, dialects: Mapping[str, ErrorRenderer]) -> Response:
    """`error` as problem+json, or in the dialect of the first prefix of `dialects` the path is under."""
    path = request.url.path
    for prefix, render in dialects.items():
        if path == prefix or path.startswith(prefix + "/"):
            return render(request, error)
    return problem(
        error.status,
        error.code,
        error.title,
        error.detail,
        instance=path,
        headers=error.headers,
        **error.extra,
    )


def install_handlers(app: FastAPI, dialects: Mapping[str, ErrorRenderer] | None = None) -> None:
    """Every error → problem+json, or, for a path under one of `dialects`' prefixes (`/v1/videos`: that
    path and everything below it), that prefix's renderer."""
    prefixes = dict(dialects or {})

    def respond(request: Request, error: ErrorInfo) -> Response:
        return render_error(request, error, prefixes)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return respond(
            request, ErrorInfo(exc.status, exc.code, exc.title, exc.detail, exc.headers, exc.extra)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            reason = next(e["message"] for e in errors if e["type"] == "json_invalid")
            return respond(
                request,
                ErrorInfo(
                    400,
                    "invalid_json",
                    "Malformed JSON",
                    f"the request body is {reason}",
                    extra={"field": "body", "errors": errors},
                ),
            )
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return respond(
            request,
            ErrorInfo(
                422,
                "validation_error",
                "Invalid request",
                f"{first['field']}: {first['message']}",
                extra={"field": first["field"], "errors": errors},
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        headers = dict(exc.headers or {})
        allow = allowed_methods(request) if exc.status_code == 405 else None
        if allow:
            headers["Allow"] = allow
        return respond(request, ErrorInfo(exc.status_code, code, detail, None, headers))

    async def _database(request: Request, exc: Exception) -> Response:
        """The database is unreachable, gone or locked: 503 with Retry-After (and the connection kept),
        not a 500. Anything else of these types is a bug: re-raised to the catch-all below."""
        if not is_unavailable(exc):
            raise exc
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return respond(
            request,
            ErrorInfo(
                503,
                "database_unavailable",
                "Database unavailable",
                "the database cannot be used right now; retry after Retry-After",
                {"Retry-After": str(DATABASE_RETRY_AFTER_S)},
            ),
        )

    # OSError: a connect refused or reset below SQLAlchemy; is_unavailable checks it came from there.
    for kind in (DatabaseUnavailable, SQLAlchemyError, *DRIVER_CONNECTION_ERRORS, OSError):
        app.add_exception_handler(kind, _database)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return respond(request, ErrorInfo(500, "internal_error", "Internal error"))
