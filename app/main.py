"""`create_app(settings)`: routers, error handlers, offline docs and the lifespan — nothing else.

Run with `wan-gateway serve` (which applies migrations first) or `uvicorn --factory app.main:create_app`.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import FastAPI, Header
from fastapi.openapi.utils import get_openapi

from app import __version__
from app.api import deliveries, docs, events, health, jobs, links, models, usage
from app.api.body_limit import BodySizeLimit
from app.compat.dashscope import errors as dashscope_errors
from app.compat.dashscope import routes as dashscope
from app.compat.openai import errors as openai_errors
from app.compat.openai import routes as openai_videos
from app.config import Settings
from app.console import routes as console
from app.errors import PROBLEM_JSON, install_handlers
from app.jobs.schemas import WebhookPayload
from app.lifespan import lifespan
from app.telemetry import tracing

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
    # Errors under a drop-in surface's prefix answer in its API's shape (the body limit's too).
    dialects = {openai_errors.PREFIX: openai_errors.render, dashscope_errors.PREFIX: dashscope_errors.render}
    install_handlers(app, dialects=dialects)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=app.state.settings.max_request_bytes,
        idle_timeout_s=app.state.settings.body_timeout_s,
        dialects=dialects,
    )
    app.include_router(jobs.router)
    app.include_router(links.router)
    app.include_router(events.router)
    app.include_router(deliveries.router)
    app.include_router(health.router)
    app.include_router(usage.router)
    app.include_router(models.router)
    dashscope.install(app)
    app.include_router(openai_videos.router)
    console.install(app)
    document_webhooks(app)
    docs.install_docs(app)
    # A server span per request, only with OTEL_EXPORTER_OTLP_ENDPOINT (the provider is made here, before
    # the lifespan, which instruments the engine and the clients with the same one).
    if tracing.enable(app.state.settings.otel_exporter_otlp_endpoint):
        tracing.instrument_app(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


#: What the receiver of a webhook may answer, and what the gateway makes of it.
WEBHOOK_RESPONSES: dict[str, Any] = {
    "2XX": {"description": "Acknowledged: the delivery succeeded (the body is ignored)"},
    "410": {"description": "Gone: no more deliveries to this endpoint until one is redelivered by hand"},
    "default": {
        "description": "Anything else, or no answer within 10 s: retried on WEBHOOK_RETRY_SCHEDULE "
        "(429/503 `Retry-After` is honoured)"
    },
}


def document_webhooks(app: FastAPI) -> None:
    """The outgoing webhook, in the OpenAPI `webhooks` section."""

    @app.webhooks.post("job-event", summary="A job entered a new status", tags=["webhooks"])
    def job_event(
        body: WebhookPayload,
        webhook_id: Annotated[
            str,
            Header(alias="webhook-id", description="Stable across retries and replays: deduplicate on it."),
        ],
        webhook_timestamp: Annotated[
            str, Header(alias="webhook-timestamp", description="Unix seconds of this attempt.")
        ],
        webhook_signature: Annotated[
            str,
            Header(
                alias="webhook-signature",
                description='`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the `whsec_` secret; '
                "several, space-separated, while secrets rotate.",
            ),
        ],
    ) -> None:
        """POSTed to the job's `webhook_url` (events in `webhook_events`; terminal ones by default) and
        to WEBHOOK_DEFAULT_URL, signed as in Standard Webhooks (verify with any of its libraries).
        Answer 2xx to acknowledge. Other answers and timeouts (10 s) are retried on
        WEBHOOK_RETRY_SCHEDULE (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, with jitter);
        429/503 `Retry-After` is honoured; redirects are not followed; 410 Gone stops deliveries to
        the endpoint."""


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with error responses declared as `application/problem+json` (what they are), and
    the webhook's answers as its receiver gives them."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        webhooks=app.webhooks.routes,
    )
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, path_item in schema.get("paths", {}).items():
        if path.startswith(dashscope.router.prefix + "/"):
            # DashScope's wire: its own error envelope, documented on each operation; never a 422.
            for operation in path_item.values():
                operation.get("responses", {}).pop("422", None)
            continue
        if path == openai_errors.PREFIX or path.startswith(openai_errors.PREFIX + "/"):
            _openai_errors(path_item)
            continue
        for operation in path_item.values():
            # Every route refuses unknown query parameters (app/api/routing.py), even one that has none.
            operation.setdefault("responses", {}).setdefault("422", {})
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content.setdefault(PROBLEM_JSON, content.pop("application/json"))
                if status == "422":  # FastAPI's default validation body is not what we send
                    response["description"] = (
                        "A field or query parameter is invalid or unknown; `field` names it"
                    )
                    response["content"] = {PROBLEM_JSON: {"schema": problem_ref}}
    for path_item in schema.get("webhooks", {}).values():
        for operation in path_item.values():
            # FastAPI describes the webhook as if the gateway served it (a 200 of ours, a 422 of FastAPI's
            # validation, whose schema is dropped below); the answers are the receiver's.
            operation["responses"] = copy.deepcopy(WEBHOOK_RESPONSES)
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def _openai_errors(path_item: dict[str, Any]) -> None:
    """The OpenAI-compatible routes answer every error in OpenAI's envelope, a refused parameter (or
    unknown query parameter) as 400: FastAPI's 422 is not what they send."""
    error_ref = {"$ref": "#/components/schemas/OpenAIError"}
    for operation in path_item.values():
        responses = operation.setdefault("responses", {})
        responses.pop("422", None)
        responses.setdefault("400", {"description": "A parameter is invalid or unknown: `param` names it"})
        for status, response in responses.items():
            if status[0] in "45":
                response["content"] = {"application/json": {"schema": error_ref}}
