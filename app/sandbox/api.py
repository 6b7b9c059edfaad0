"""The six DashScope routes under /api/v1 (§1.2): headers, bodies and query strings in, JSON out."""

from __future__ import annotations

import json
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.providers.dashscope.capabilities import Endpoint
from app.sandbox.emulator import Emulator
from app.sandbox.errors import BAD_REQUEST, SYNC_NOT_SUPPORTED, ApiError, invalid, new_request_id
from app.sandbox.middleware import ARRIVED_AT


class AsciiJSONResponse(JSONResponse):
    """JSON with everything beyond ASCII escaped: the same document, and one that can carry a lone
    surrogate (U+D800, as the `nul` task fault sends), which raw UTF-8 cannot encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def emulator_of(request: Request) -> Emulator:
    return cast(Emulator, request.app.state.emulator)


def public_base(request: Request) -> str:
    """Where clients reach this sandbox: configured, else the scheme://host:port they used."""
    configured = emulator_of(request).config.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


def _header_enabled(request: Request, name: str) -> bool:
    return request.headers.get(name, "").strip().lower() == "enable"


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise invalid(BAD_REQUEST) from None


async def _create(request: Request, endpoint: Endpoint) -> JSONResponse:
    emulator = emulator_of(request)
    account = emulator.authenticate(request.headers.get("authorization"))
    if not _header_enabled(request, "x-dashscope-async"):
        raise ApiError(403, "AccessDenied", SYNC_NOT_SUPPORTED)
    body = await _json_body(request)
    result = await emulator.create(
        body,
        endpoint=endpoint,
        account=account,
        oss_resolve=_header_enabled(request, "x-dashscope-ossresourceresolve"),
        arrived_at=getattr(request.state, ARRIVED_AT, None),
    )
    return JSONResponse(result)


async def create_i2v(request: Request) -> JSONResponse:
    return await _create(request, Endpoint.I2V)


async def create_kf2v(request: Request) -> JSONResponse:
    return await _create(request, Endpoint.KF2V)


async def get_task(request: Request) -> JSONResponse:
    emulator = emulator_of(request)
    account = emulator.authenticate(request.headers.get("authorization"))
    emulator.throttle_task_api(account)
    task_id = request.path_params["task_id"]
    return AsciiJSONResponse(await emulator.query(task_id, account=account, public_base=public_base(request)))


async def cancel_task(request: Request) -> JSONResponse:
    # Any body is ignored: the aiohttp SDK sends `{"model": "", "parameters": {}, "input": ""}` (A.12).
    emulator = emulator_of(request)
    account = emulator.authenticate(request.headers.get("authorization"))
    emulator.throttle_task_api(account)
    await emulator.cancel(request.path_params["task_id"], account=account)
    return JSONResponse({"request_id": new_request_id()})


async def list_tasks(request: Request) -> JSONResponse:
    emulator = emulator_of(request)
    account = emulator.authenticate(request.headers.get("authorization"))
    emulator.throttle_task_api(account)
    return JSONResponse(await emulator.list_tasks(request.query_params, account=account))


async def get_upload_policy(request: Request) -> JSONResponse:
    emulator = emulator_of(request)
    account = emulator.authenticate(request.headers.get("authorization"))
    policy = emulator.upload_policy(request.query_params, account=account, public_base=public_base(request))
    return JSONResponse(policy)


# Trailing slashes are stripped before routing (middleware.py), so each path is declared once.
ROUTES = [
    Route(f"/api/v1{Endpoint.I2V.path}", create_i2v, methods=["POST"]),
    Route(f"/api/v1{Endpoint.KF2V.path}", create_kf2v, methods=["POST"]),
    Route("/api/v1/tasks", list_tasks, methods=["GET"]),
    Route("/api/v1/tasks/{task_id}", get_task, methods=["GET"]),
    Route("/api/v1/tasks/{task_id}/cancel", cancel_task, methods=["POST"]),
    Route("/api/v1/uploads", get_upload_policy, methods=["GET"]),
]
