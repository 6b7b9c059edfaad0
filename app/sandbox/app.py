"""`create_sandbox_app`: the emulator as one ASGI app (DashScope routes, OSS stand-ins, control API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.sandbox import api, control, files
from app.sandbox.config import SandboxConfig
from app.sandbox.emulator import Emulator
from app.sandbox.errors import INTERNAL, NOT_FOUND, ApiError, error_response
from app.sandbox.middleware import SandboxEdge


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(405, "MethodNotAllowed", "Method not allowed!")
    return error_response(404, "NotFound", NOT_FOUND)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, so the server still logs the traceback.
    return error_response(500, "InternalError", INTERNAL)


def create_sandbox_app(config: SandboxConfig) -> Starlette:
    """The emulator app. Its `Emulator` (faults, stats, store) is `app.state.emulator`."""
    emulator = Emulator(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await emulator.aclose()

    app = Starlette(
        routes=[*api.ROUTES, *files.ROUTES, *control.ROUTES],
        middleware=[Middleware(SandboxEdge, faults=emulator.faults, stats=emulator.stats)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.emulator = emulator
    return app
