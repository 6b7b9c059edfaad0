"""OpenAI's Videos words ↔ the gateway's jobs, both ways, as pure functions.

- Create: OpenAI's parameters (`prompt`, `model`, `seconds`, `size`, `input_reference`) plus the Wan
  options of `POST /v1/jobs` as extra fields → a `JobCreate`, which the job service then validates like
  any other (the same registry, limits and image checks). `model` must be a Wan model (OpenAI's `sora-*`
  are named as not served here, with the list of what is); `seconds` must be one of the model's durations.
- A job → OpenAI's `Video`: the status collapsed onto OpenAI's four (`STATUS`), unix seconds, `seconds`
  as a string, `size` as `WxH`.
- Remix: the source job's parameters (its normalized `request`) with a new prompt, and its reference image
  as it was sent upstream (the checked bytes as a data: URI, whatever the original URL serves today). The
  new job names its source in its `metadata` under `REMIX_KEY`, which is what `remixed_from_video_id`
  reads (so a remix is an ordinary job, and `/v1/jobs` shows the link too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.compat.openai.errors import param_name
from app.compat.openai.schemas import Video, VideoError, VideoStatus
from app.errors import FieldError, field_name
from app.jobs.estimates import Live, progress
from app.jobs.models import Job
from app.jobs.schemas import JobCreate
from app.jobs.states import JobStatus
from app.providers.dashscope.capabilities import DEFAULT_MODEL, MODELS, ModelSpec

#: The metadata key of a remix's source video id (`remixed_from_video_id`).
REMIX_KEY = "openai.remixed_from_video_id"

STATUS: dict[JobStatus, VideoStatus] = {
    JobStatus.QUEUED: "queued",
    JobStatus.SUBMITTED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.STORING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "failed",
}

OPENAI_PARAMS = ("prompt", "model", "seconds", "size", "input_reference")
#: Job fields OpenAI's parameters stand for (`seconds` → duration, `input_reference` → reference_image).
_MAPPED = frozenset({"prompt", "model", "size", "duration", "reference_image"})
#: The Wan options accepted as extra fields: every other field of `POST /v1/jobs`.
WAN_OPTIONS = tuple(name for name in JobCreate.model_fields if name not in _MAPPED)
#: Parameters of the source job a remix keeps (its normalized request's fields that a body takes).
_REMIX_KEEPS = tuple(
    name for name in JobCreate.model_fields if name not in {"prompt", "model", "reference_image"}
)

_SIZE = re.compile(r"^([0-9]{2,5})x([0-9]{2,5})$")


def available_models() -> str:
    return ", ".join(MODELS)


def model_spec(value: Any) -> ModelSpec:
    if value is None:
        value = DEFAULT_MODEL
    if not isinstance(value, str):
        raise FieldError("model", "must be a string naming a Wan model")
    spec = MODELS.get(value)
    if spec is not None:
        return spec
    if value.lower().startswith(("sora", "gpt", "dall-e")):
        why = f"{value[:64]!r} is an OpenAI model, which this gateway does not serve"
    else:
        why = f"unknown model {value[:64]!r}"
    raise FieldError(
        "model",
        f"{why}; it renders Wan image-to-video models: {available_models()} (default {DEFAULT_MODEL})",
    )


def duration(value: Any, spec: ModelSpec) -> int:
    """OpenAI's `seconds` (a string, as the SDK sends it; a JSON integer is fine) → whole seconds the model
    renders."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    offered = ", ".join(str(d) for d in spec.durations)
    if not isinstance(text, str) or not text.strip().isdigit():
        raise FieldError(
            "seconds", f"must be a whole number of seconds as a string; {spec.name} renders {offered}"
        )
    seconds = int(text.strip())
    if seconds not in spec.durations:
        raise FieldError("seconds", f"{spec.name} renders clips of {offered} seconds, not {seconds}")
    return seconds


def job_size(value: Any) -> str:
    """OpenAI's `WxH` → the job's `W*H` (which picks the resolution tier; the output keeps the image's
    aspect ratio)."""
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise FieldError("size", "must look like 1280x720 (WIDTHxHEIGHT)")
    return f"{match.group(1)}*{match.group(2)}"


def reference_image(value: Any) -> str:
    """`input_reference`: an uploaded file (already a data: URI here), or `{"image_url": …}` (an http(s)
    URL or a data: URI)."""
    if value is None:
        raise FieldError(
            "input_reference",
            "Wan models animate a reference image: upload one as the input_reference file, or give "
            '{"image_url": "https://… or data:image/…;base64,…"}',
        )
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        url = value.get("image_url")
        if isinstance(url, str) and url:
            return url
        if "file_id" in value:
            raise FieldError(
                "input_reference", "file_id references are not supported: upload the file or give image_url"
            )
    raise FieldError("input_reference", 'must be an uploaded file or {"image_url": "…"}')


def job_create(params: Mapping[str, Any], *, lax: bool = False) -> JobCreate:
    """OpenAI's create parameters (plus Wan options) → the job body. `lax`: the values came from a form,
    as text (`"42"`, `"true"`), and are converted as the field's type says."""
    unknown = [name for name in params if name not in OPENAI_PARAMS and name not in WAN_OPTIONS]
    if unknown:
        raise FieldError(
            unknown[0][:100],
            f"unknown parameter; accepted: {', '.join(OPENAI_PARAMS)} and the Wan options "
            f"{', '.join(WAN_OPTIONS)}",
        )
    spec = model_spec(params.get("model"))
    body: dict[str, Any] = {name: params[name] for name in WAN_OPTIONS if params.get(name) is not None}
    body["model"] = spec.name
    if params.get("prompt") is not None:
        body["prompt"] = params["prompt"]
    if params.get("seconds") is not None:
        body["duration"] = duration(params["seconds"], spec)
    if params.get("size") is not None:
        body["size"] = job_size(params["size"])
    body["reference_image"] = reference_image(params.get("input_reference"))
    if isinstance(body.get("metadata"), dict) and REMIX_KEY in body["metadata"]:
        raise FieldError(f"metadata[{REMIX_KEY!r}]", "is set by remix only")
    return validated(body, lax=lax)


def validated(body: dict[str, Any], *, lax: bool = False) -> JobCreate:
    try:
        return JobCreate.model_validate(body, strict=not lax)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FieldError(param_name(field_name(first["loc"])), first["msg"]) from None


def remix_create(
    source: Job,
    images: tuple[str | None, str | None],
    prompt: Any,
    options: Mapping[str, Any],
    *,
    lax: bool = False,
) -> JobCreate:
    """A new job from `source`'s parameters and images with `prompt` (and any Wan `options` given)."""
    unknown = [name for name in options if name not in WAN_OPTIONS]
    if unknown:
        raise FieldError(unknown[0][:100], "unknown parameter; a remix takes prompt and the Wan options")
    reference, last = images
    if reference is None:
        raise FieldError("video_id", "the source video has no reference image to remix")
    body: dict[str, Any] = {name: source.request[name] for name in _REMIX_KEEPS if name in source.request}
    if source.webhook_url:
        body["webhook_url"] = source.webhook_url
        body["webhook_events"] = source.webhook_events
    body.update({name: value for name, value in options.items() if value is not None})
    body.update(model=source.model, prompt=prompt, reference_image=reference)
    if last is not None:
        body["last_frame_image"] = last
    given = body.get("metadata") or {}
    if not isinstance(given, dict):
        raise FieldError("metadata", "must be an object")
    body["metadata"] = {**(source.meta or {}), **given, REMIX_KEY: source.id}
    return validated(body, lax=lax)


def video(job: Job, *, expires_at: datetime | None = None, live: Live | None = None) -> Video:
    """The job as OpenAI's `Video`; `expires_at`: when its stored video goes (STORAGE_RETENTION_S);
    `live`: its progress now (`estimates.Estimator`), the same number `/v1/jobs` shows."""
    status = JobStatus(job.status)
    request = job.request or {}
    error = None
    if status is JobStatus.CANCELED:
        error = VideoError(code="canceled", message="the job was canceled")
    elif status is JobStatus.FAILED:
        detail = job.error or {}
        error = VideoError(
            code=str(detail.get("code") or "failed"), message=str(detail.get("message") or "the job failed")
        )
    remixed = (job.meta or {}).get(REMIX_KEY)
    return Video(
        id=job.id,
        model=job.model,
        status=STATUS[status],
        progress=(live.progress if live is not None else progress(job)) or 0,
        created_at=int(job.created_at.timestamp()),
        completed_at=int(job.finished_at.timestamp()) if job.finished_at and status.terminal else None,
        expires_at=int(expires_at.timestamp()) if expires_at is not None else None,
        seconds=_seconds_text(request.get("duration")),
        size=frame_size(job),
        error=error,
        remixed_from_video_id=remixed if isinstance(remixed, str) else None,
        prompt=request.get("prompt"),
    )


def _seconds_text(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    return ""


def frame_size(job: Job) -> str:
    """`WxH` of the stored file; before it exists, the frame size expected from the image and the tier."""
    result = job.result or {}
    if result.get("width") and result.get("height"):
        return f"{result['width']}x{result['height']}"
    request = job.request or {}
    for key in ("expected_size", "size"):
        value = request.get(key)
        if isinstance(value, str) and (match := re.match(r"^\s*(\d+)\s*[*xX×]\s*(\d+)\s*$", value)):
            return f"{match.group(1)}x{match.group(2)}"
    return ""
