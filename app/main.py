"""`create_app(settings)`: routers, error handlers, offline docs and the lifespan — nothing else.

Run with `wan-gateway serve` (which applies migrations first) or `uvicorn --factory app.main:create_app`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app import __version__
from app.api import docs, health, jobs
from app.config import Settings
from app.errors import PROBLEM_JSON, install_handlers
from app.lifespan import lifespan

DESCRIPTION = """\
A self-hosted gateway for **Wan image-to-video** on Alibaba Cloud Model Studio (DashScope).

Submit a normalized `video.generate` job; the gateway stores it, submits it to DashScope within the
account's rate and concurrency limits, polls it, copies the finished MP4 into storage you own, and serves
it from `GET /v1/jobs/{id}/content`. Errors are RFC 9457 `application/problem+json` with a stable `code`;
validation errors name the offending `field`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="wan-gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings or Settings()
    install_handlers(app)
    app.include_router(jobs.router)
    app.include_router(health.router)
    docs.install_docs(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with error responses declared as `application/problem+json` (what they are)."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content.setdefault(PROBLEM_JSON, content.pop("application/json"))
                if status == "422":  # FastAPI's default validation body is not what we send
                    response["description"] = "A field is invalid; `field` names it"
                    response["content"] = {PROBLEM_JSON: {"schema": problem_ref}}
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
