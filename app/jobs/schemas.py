"""Request and response bodies of the jobs API: the normalized `video.generate` interface (seed 004) plus
DashScope options, and the job as clients see it. Type checks live here; per-model rules in the provider."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.jobs.states import EVENT_TYPES, JobStatus
from app.providers.dashscope.capabilities import DEFAULT_MODEL, SEED_MAX
from app.statuses import DeliveryStatus

#: The longest image field: a 10 MB image (DashScope's limit) as a base64 `data:` URI is ~13.4 MB.
IMAGE_FIELD_MAX_CHARS = 14 * 1024 * 1024
#: URLs (images that are not `data:` URIs, audio_url, webhook_url).
URL_MAX_CHARS = 2048
#: metadata: nesting levels (the object itself is level 1), key and string lengths, serialized size.
METADATA_MAX_DEPTH = 8
METADATA_MAX_KEY_CHARS = 128
METADATA_MAX_STRING_CHARS = 4096
METADATA_MAX_BYTES = 16 * 1024

#: A real 640x360 PNG (white, 185 bytes), so the example body of the API reference ("Try it out") makes a
#: job as it is.
EXAMPLE_IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAoAAAAFoAQAAAADvSXf8AAAAgElEQVR42u3MQQ0AAAgEoNP+nbWEHz"
    "cIQE1udYRCoVAoFAqFQqFQKBQKhUKhUCgUCoVCoVAoFAqFQqFQKBQKhUKhUCgUCoVCoVAoFAqFQqFQKBQKhUKhUCgUCoVCoVAo"
    "FAqFQqFQKBQKhUKhUCgUCoVCoVAoFAqFQqFQKBQKX4YLJU8Dz0suLi8AAAAASUVORK5CYII="
)

_SIZE = re.compile(r"^\s*(\d{2,5})\s*[*xX×]\s*(\d{2,5})\s*$")

# The status and event words, as the API's types: Literals built from `states.JobStatus` (where they are
# written), so OpenAPI shows an inline string enum and strict validation of a body accepts the plain
# JSON string (a StrEnum field would want an enum instance in strict mode). `Literal[("a", "b")]` is
# `Literal["a", "b"]`. Type checkers see `str`.
if TYPE_CHECKING:
    JobStatusName = str
    DeliveryStatusName = str
    EventType = str
else:
    JobStatusName = Literal[tuple(s.value for s in JobStatus)]
    DeliveryStatusName = Literal[tuple(s.value for s in DeliveryStatus)]
    EventType = Literal[EVENT_TYPES]


def parse_size(value: str) -> tuple[int, int]:
    match = _SIZE.match(value)
    if not match:
        raise ValueError("size must look like 1280*720 (WIDTH*HEIGHT)")
    width, height = int(match.group(1)), int(match.group(2))
    if width == 0 or height == 0:
        raise ValueError("size must have positive sides")
    return width, height


def _check_text(value: str) -> None:
    # PostgreSQL cannot store U+0000 in text or JSONB: refused here for every store alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")


def _check_metadata(value: dict[str, Any]) -> None:
    """Depth, key and string limits, walked iteratively (deep input must not exhaust the stack)."""
    stack: list[tuple[Any, str, int]] = [(value, "metadata", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item, path, METADATA_MAX_STRING_CHARS, "strings")
        elif isinstance(item, dict | list):
            if depth > METADATA_MAX_DEPTH:
                raise ValueError(f"nests deeper than {METADATA_MAX_DEPTH} levels (at {path})")
            if isinstance(item, list):
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
                continue
            for key, child in item.items():
                where = f"{path}[{key[:40]!r}]"  # repr: the message never carries raw input
                _check_string(key, f"the key {where}", METADATA_MAX_KEY_CHARS, "keys")
                stack.append((child, where, depth + 1))


def _check_string(value: str, where: str, limit: int, kind: str) -> None:
    if len(value) > limit:
        raise ValueError(f"{kind} are limited to {limit} characters ({where})")
    if "\x00" in value:
        raise ValueError(f"must not contain NUL (U+0000) characters ({where})")


class JobCreate(BaseModel):
    """A `video.generate` job. Unknown fields are refused (422 naming the field), so typos never pass.
    Types are strict: `"5"` is not a number, `1` or `"on"` not a boolean, `true` not an integer (a JSON
    integer is a fine number). Every string has a length limit; NUL characters are refused."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "prompt": "a cat running across a sunny lawn, cinematic",
                    "duration": 5,
                    "size": "1280*720",
                    "seed": 42,
                    "reference_image": EXAMPLE_IMAGE,
                }
            ]
        },
    )

    prompt: str | None = Field(
        default=None,
        max_length=1500,
        description="What happens in the video (≤1500 chars for wan2.6/2.5, "
        "≤800 for the others). Required unless `template` is set.",
    )
    negative_prompt: str | None = Field(
        default=None, max_length=500, description="What to avoid (≤500 chars)."
    )
    duration: float | None = Field(
        default=None, gt=0, le=60, description="Seconds, a whole number the model offers (default 5)."
    )
    fps: float | None = Field(
        default=None, gt=0, le=240, description="Frames per second. Wan renders 30 fps only: 30 or omitted."
    )
    size: str | None = Field(
        default=None,
        max_length=32,
        examples=["1280*720"],
        description="`WIDTH*HEIGHT`; picks the resolution tier by pixel count (480P/720P/1080P). The output "
        "keeps the reference image's aspect ratio. Default: the model's default tier.",
    )
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX, description="Random seed, 0–2147483647.")
    reference_image: str = Field(
        min_length=1,
        max_length=IMAGE_FIELD_MAX_CHARS,
        description="First frame: an http(s):// or oss:// URL (≤2048 chars), or a "
        "`data:image/<type>;base64,` "
        "URI (JPEG, PNG without alpha, BMP or WEBP; 360–2000 px per side; ≤10 MB). An http(s) URL is fetched "
        "by the gateway at submit (public addresses only, redirects checked, size and time capped), "
        "checked and hashed like a data: URI, and its bytes are sent upstream; a URL that cannot be "
        "fetched is a 422. oss:// URLs are passed through.",
    )
    last_frame_image: str | None = Field(
        default=None,
        max_length=IMAGE_FIELD_MAX_CHARS,
        description="Last frame, for the kf2v models only (same formats as reference_image).",
    )
    motion_strength: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Accepted for compatibility with video.generate; DashScope has no such parameter, so it "
        "is not sent (the job's `warnings` say so).",
    )
    model: str = Field(
        default=DEFAULT_MODEL, max_length=64, description="A Wan image-to-video model (see docs/MODELS.md)."
    )
    resolution: Literal["480P", "720P", "1080P"] | None = Field(
        default=None, description="Resolution tier; wins over `size`."
    )
    audio_url: str | None = Field(
        default=None, max_length=URL_MAX_CHARS, description="wav/mp3 soundtrack URL (wan2.6, wan2.5 only)."
    )
    audio: bool | None = Field(default=None, description="Sound on/off (wan2.6-i2v-flash only; default on).")
    shot_type: Literal["single", "multi"] | None = Field(default=None, description="wan2.6 only.")
    prompt_extend: bool | None = Field(
        default=None, description="Let DashScope rewrite the prompt (default on)."
    )
    watermark: bool | None = Field(default=None, description="Add the 'AI generated' mark (default off).")
    template: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Effect template, e.g. `flying` (wanx2.1 models only).",
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Your own JSON object, echoed back: ≤16 KB serialized, nesting ≤8 levels, keys ≤128 "
        "characters, strings ≤4096 characters.",
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=URL_MAX_CHARS,
        description="Where to POST signed events (Standard Webhooks). Must resolve to public addresses "
        "unless the gateway runs with ALLOW_PRIVATE_URLS=true.",
    )
    webhook_events: list[EventType] | None = Field(
        default=None,
        min_length=1,
        max_length=7,
        description="Which events to send to webhook_url (default: job.succeeded, job.failed, job.canceled).",
    )
    cache: bool = Field(
        default=True,
        description="Allow result reuse. With an explicit `seed`, a request identical to one of your "
        "succeeded jobs gets that job's stored video at once (`cached: true`, no new upstream task), and one "
        "identical to a job still running waits for it instead of being submitted again. `false`: always "
        "generate anew.",
    )

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value)
        return value

    @field_validator("prompt", "negative_prompt", "size", "model", "audio_url", "template", "webhook_url")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None:
            _check_text(value)
        return value

    @field_validator("reference_image", "last_frame_image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and value[:5].lower() != "data:" and len(value) > URL_MAX_CHARS:
            raise ValueError(f"an image URL is limited to {URL_MAX_CHARS} characters (use a data: URI)")
        if value is not None:
            _check_text(value)
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_metadata(value)
            if len(json.dumps(value)) > METADATA_MAX_BYTES:
                raise ValueError("metadata must serialize to at most 16 KB")
        return value


class UpstreamInfo(BaseModel):
    task_id: str | None = Field(description="DashScope task id, once the task exists.")
    request_id: str | None = None
    status: str | None = Field(default=None, description="Last DashScope task_status seen.")
    submit_time: str | None = Field(default=None, description="As DashScope reports it (zone unstated).")
    scheduled_time: str | None = None
    end_time: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = Field(default=None, description="The prompt after DashScope's rewriting.")


class JobResult(BaseModel):
    video_url: str = Field(
        description="Where to download the stored MP4 (this gateway's /content, with the client key)."
    )
    signed_url: str | None = Field(
        default=None,
        description="The same MP4 behind a signed link that needs no key (`GET /v1/links/{id}/video?"
        "expires=…&signature=…`: a plain GET, a `<video src>`), valid until `signed_url_expires_at`; the "
        "same URL for every read within the hour. Null when the gateway signs no links.",
    )
    signed_url_expires_at: datetime | None = Field(
        default=None,
        description="When `signed_url` stops working (LINK_TTL_S from now, rounded up to the hour).",
    )
    duration: float = Field(description="Seconds, probed from the stored file.")
    fps: float = Field(description="Probed from the stored file.")
    seed: int | None = Field(description="The request's seed (DashScope does not report one).")
    width: int
    height: int
    bytes: int
    sha256: str
    content_type: str
    video_codec: str | None = None
    has_audio: bool | None = None
    expired_at: datetime | None = Field(
        default=None,
        description="When the stored video (and its thumbnails) was removed after STORAGE_RETENTION_S: "
        "`/content` then answers `410 Gone`. Null while it is stored.",
    )


class JobError(BaseModel):
    code: str = Field(description="Stable machine code, e.g. `upstream_failed`, `upstream_task_unknown`.")
    message: str
    upstream_code: str | None = Field(default=None, description="DashScope's own code, when it gave one.")


class JobCost(BaseModel):
    """What the job costs upstream, by the gateway's price table (app/billing/, docs/PRICES.md)."""

    amount: str = Field(
        description='Decimal string in `currency`, e.g. `"1.50"`: `unit_price` × `billed_seconds`.'
    )
    currency: str = Field(description="`CNY` (Beijing) or `USD` (Singapore, US), by DASHSCOPE_REGION.")
    billed_seconds: int | float = Field(
        description="Seconds of video priced: the request's duration while estimated, then DashScope's own "
        "count from the task's `usage`; 0 when nothing is billed."
    )
    unit_price: str = Field(description="Price of one second of this model, tier and sound (decimal string).")
    price_version: str = Field(description="The version of the price table that priced it.")
    estimated: bool = Field(
        description="True until the job ends (the estimate from the request); false once it is what "
        'DashScope bills: the task\'s `usage` when it succeeded upstream, `"0"` for a failed or canceled '
        "job, a reused video or a follower (DashScope bills only successful tasks)."
    )


class JobRetry(BaseModel):
    """A step of a job that has not finished failed for a reason that may pass (a full disk, a network
    error): the job is not failing, it tries the step again by itself."""

    reason: str = Field(description="Stable machine code, e.g. `storage_failed`, `download_failed`.")
    message: str = Field(description="What failed, in words for people.")
    attempts: int = Field(description="Failed attempts in a row so far.")
    next_attempt_at: datetime | None = Field(description="When the gateway tries again.")


class Job(BaseModel):
    """A job as clients see it."""

    object: Literal["job"] = "job"
    id: str
    status: JobStatusName
    model: str
    tenant: str | None = Field(
        default=None,
        description="The tenant that owns the job (the tenant of the key that made it); null when client "
        "authentication is off. An admin key lists and reads every tenant's jobs.",
    )
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    progress: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Percentage from what the gateway knows (DashScope reports none): 0 while queued; "
        "while submitted or running, the time since submit against the run time learnt from recent jobs "
        "of the same model, resolution and duration (a typical guess before any has finished), on 0–90 "
        "and never more however late; while storing, the bytes copied on 90–99; 100 once stored. Null "
        "once failed or canceled. A job following an identical one (`source_job_id`) shows that job's.",
    )
    queue_position: int | None = Field(
        default=None,
        ge=1,
        description="While queued: the job's place in its model family's queue (1 = the next to go "
        "upstream), in the order the gateway hands out upstream slots (fair across tenants, FIFO within "
        "one). Null when not waiting in the queue (submitted, following an identical job, finished), and "
        "in status events and webhooks.",
    )
    eta: datetime | None = Field(
        default=None,
        description="When the job is expected to be stored (UTC): from the learnt run times and, while "
        "queued, the family's upstream slots ahead of it (a job following an identical one: that job's). "
        "Null when unknown: finished, running past its expected time, or in status events and webhooks.",
    )
    request: dict[str, Any] = Field(description="The normalized request (images described, never repeated).")
    upstream: UpstreamInfo | None = None
    result: JobResult | None = None
    error: JobError | None = None
    retry: JobRetry | None = Field(
        default=None,
        description="Set while a job that has not finished waits to retry a step after a transient failure "
        "(`error` stays null: the job has not failed); null again once the step succeeds.",
    )
    usage: dict[str, Any] | None = Field(default=None, description="DashScope's billing usage, verbatim.")
    cost: JobCost | None = Field(
        default=None,
        description="The job's price: estimated at submit, billed from `usage` at the end. Null when the "
        "price table has no row for the model and tier (PRICE_TABLE_FILE adds one).",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the gateway did not do as asked: options DashScope ignores, and a stored video "
        "whose duration or frame size is not the one asked.",
    )
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = None
    webhook_events: list[EventType] | None = None
    cached: bool = Field(
        default=False,
        description="The video was reused from an identical earlier job (`source_job_id`): no upstream task "
        "was made for this one.",
    )
    source_job_id: str | None = Field(
        default=None,
        description="The identical job this one takes its result from: the job whose video it reuses "
        "(`cached`), or the job still running that it waits for (it stays `queued` meanwhile, then ends as "
        "that job ends).",
    )


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Job]
    next_cursor: Annotated[
        str | None, Field(description="Pass as `cursor` for the next page; null at the end.")
    ]


class WebhookPayload(BaseModel):
    """The body of every webhook (and the `data` of every server-sent event is its `data`)."""

    type: EventType = Field(description="`job.<status>`: the status the job just entered.")
    timestamp: datetime = Field(description="When the job entered that status.")
    data: Job = Field(description="The job as `GET /v1/jobs/{id}` returned it at that moment.")


class DeliveryAttempt(BaseModel):
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when no answer came.")
    latency_ms: int
    error: str | None = Field(description="Why the attempt failed (timeout, refused address, 5xx, …).")
    response_body: str | None = Field(description="The first 1 KB of the receiver's answer.")


class Delivery(BaseModel):
    object: Literal["delivery"] = "delivery"
    id: str = Field(description="The `webhook-id` header, the same on every attempt and on replays.")
    event_id: int = Field(description="The event's id (the server-sent event id, too).")
    type: EventType
    url: str
    status: DeliveryStatusName
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempts: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Delivery]
