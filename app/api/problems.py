"""The problem+json schema, for the OpenAPI description of error responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.errors import PROBLEM_JSON


class FieldProblem(BaseModel):
    field: str = Field(description="The request field, e.g. `duration` or `webhook_events[0]`.")
    message: str
    type: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details with a stable machine `code`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:wan-gateway:problem:validation_error"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str = Field(description="Stable machine code, e.g. `validation_error`, `not_found`.")
    field: str | None = Field(default=None, description="The first offending field, for validation errors.")
    errors: list[FieldProblem] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request (e.g. invalid JSON)",
        401: "No API key, or one that is unknown or revoked",
        402: "The job's estimated cost does not fit the key's budget (`budget_exceeded`: `limit`, `spent`, "
        "`reserved`, `estimate`, `currency`, `period`, and `resets_at` for a daily or monthly budget)",
        403: "The key may not do this",
        404: "No such job",
        409: "The job is not in a state that allows this",
        410: "The stored video was removed after STORAGE_RETENTION_S (`video_expired`)",
        413: "The request body is larger than MAX_REQUEST_BYTES (`limit` says how large it may be)",
        422: "A field or query parameter is invalid or unknown; `field` names it",
        429: "A quota of this key is used up; retry after `Retry-After` (see the `RateLimit-*` headers)",
        503: "Upstream or a dependency is unavailable; retry after `Retry-After`",
    }
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
