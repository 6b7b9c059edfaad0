"""DashScope's wire shapes: the create body in (§2.2–2.4), the task envelopes out (§3, §4.2).

In: `model`, `input{prompt, negative_prompt, img_url | first_frame_url, last_frame_url, audio_url,
template}`, `parameters{resolution, size, duration, prompt_extend, seed, watermark, audio, shot_type}` —
typed as the docs type them. What the SDKs add (`extend_prompt`, `function`, `prompt: null`) and parameters
the service ignores (`fps`, `ratio`, `motion_strength: null`, …) are accepted and ignored, as upstream.
The body becomes a `JobCreate` (`to_job_body`), validated by the core exactly like `POST /v1/jobs`.

Out: `task_status` from the job's status (queued/submitted → PENDING, running/storing → RUNNING, …);
times as DashScope writes them, `YYYY-MM-DD HH:MM:SS.mmm` (the gateway's own times, in UTC) and epoch
milliseconds in the list; `usage` with numbers as numbers (upstream has sent `"SR": "720"` and `10.0`;
strict clients such as the Vercel AI SDK refuse strings).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.models import Job
from app.jobs.presenter import Presenter
from app.jobs.states import JobStatus

TASK_STATUS = {
    JobStatus.QUEUED: "PENDING",
    JobStatus.SUBMITTED: "PENDING",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.STORING: "RUNNING",
    JobStatus.SUCCEEDED: "SUCCEEDED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELED: "CANCELED",
}
#: A DashScope status filter → the job statuses it covers (UNKNOWN: none).
STATUS_FILTER: dict[str, list[str]] = {
    "PENDING": [JobStatus.QUEUED.value, JobStatus.SUBMITTED.value],
    "RUNNING": [JobStatus.RUNNING.value, JobStatus.STORING.value],
    "SUCCEEDED": [JobStatus.SUCCEEDED.value],
    "FAILED": [JobStatus.FAILED.value],
    "CANCELED": [JobStatus.CANCELED.value],
    "UNKNOWN": [],
}
#: `usage` keys that are words, not numbers.
_TEXT_USAGE = frozenset({"video_ratio", "ratio", "size"})


class CreateInput(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    prompt: str | None = Field(default=None, description="What happens in the video.")
    negative_prompt: str | None = None
    img_url: str | None = Field(
        default=None,
        description="First frame (i2v models): an http(s) URL, a `data:image/…;base64,` URI, raw base64, "
        "or an `oss://` key from this gateway's upload flow (with `X-DashScope-OssResourceResolve: enable`).",
    )
    first_frame_url: str | None = Field(default=None, description="First frame (kf2v models).")
    last_frame_url: str | None = Field(default=None, description="Last frame (kf2v models).")
    audio_url: str | None = Field(default=None, description="wav/mp3 URL (wan2.6, wan2.5).")
    template: str | None = None


class CreateParameters(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    resolution: str | None = Field(default=None, description="`480P`, `720P` or `1080P`.")
    size: str | None = Field(default=None, description="`WIDTH*HEIGHT`: picks the nearest tier.")
    duration: int | None = Field(default=None, description="Seconds.")
    prompt_extend: bool | None = None
    seed: int | None = None
    watermark: bool | None = None
    audio: bool | None = Field(default=None, description="wan2.6-i2v-flash only.")
    shot_type: str | None = Field(default=None, description="`single` or `multi` (wan2.6).")


#: The parameters passed on to the job (the others are ignored, as upstream ignores them).
PARAMETERS = tuple(CreateParameters.model_fields)


class CreateTask(BaseModel):
    """DashScope's create body."""

    model_config = ConfigDict(
        extra="allow",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "model": "wan2.6-i2v-flash",
                    "input": {"prompt": "a cat running", "img_url": "https://example.com/cat.png"},
                    "parameters": {"resolution": "720P", "duration": 5},
                }
            ]
        },
    )

    model: str = Field(max_length=64, description="A Wan image-to-video model.")
    input: CreateInput
    parameters: CreateParameters | None = None


def to_job_body(task: CreateTask, *, reference: str | None, last_frame: str | None) -> dict[str, Any]:
    """The `POST /v1/jobs` body of a create (images already resolved); validated by `JobCreate`."""
    given = task.input
    body: dict[str, Any] = {
        "model": task.model,
        "prompt": given.prompt,
        "negative_prompt": given.negative_prompt,
        "audio_url": given.audio_url,
        "template": given.template,
        "reference_image": reference,
        "last_frame_image": last_frame,
    }
    if task.parameters is not None:
        body.update({name: getattr(task.parameters, name) for name in PARAMETERS})
    return {name: value for name, value in body.items() if value is not None}


def dashscope_time(when: datetime | None) -> str | None:
    """`2025-09-25 11:07:28.590`, in UTC."""
    if when is None:
        return None
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def epoch_ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def number(value: Any) -> Any:
    """An int when whole (`10.0`, `"720"` → 10, 720), a float otherwise; text that is no number stays."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return value
    if isinstance(value, int | float) and math.isfinite(value):
        return int(value) if float(value).is_integer() else float(value)
    return value


def canonical_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    shown: dict[str, Any] = {}
    for key, value in usage.items():
        if key in _TEXT_USAGE or value is None or isinstance(value, dict | list):
            shown[key] = value
        elif key == "audio" and isinstance(value, str):
            shown[key] = value.strip().lower() == "true"
        else:
            shown[key] = number(value)
    return shown


def task_output(job: Job, presenter: Presenter) -> dict[str, Any]:
    """`output` of `GET /tasks/{id}` (§3.1–3.4): the job as a DashScope task."""
    status = JobStatus(job.status)
    output: dict[str, Any] = {
        "task_id": job.id,
        "task_status": TASK_STATUS[status],
        "submit_time": dashscope_time(job.created_at),
    }
    if job.submitted_at is not None:
        output["scheduled_time"] = dashscope_time(job.submitted_at)
    if job.finished_at is not None:
        output["end_time"] = dashscope_time(job.finished_at)
    upstream = job.upstream or {}
    prompt = upstream.get("orig_prompt") or job.request.get("prompt")
    if prompt:
        output["orig_prompt"] = prompt
    if upstream.get("actual_prompt"):
        output["actual_prompt"] = upstream["actual_prompt"]
    if status is JobStatus.SUCCEEDED and job.result:
        # A signed link: DashScope's clients download video_url with a plain GET, no key (its own are
        # signed OSS URLs).
        output["video_url"] = presenter.video_link(job.id)
    if status in (JobStatus.FAILED, JobStatus.CANCELED) and job.error:
        output["code"] = job.error.get("upstream_code") or job.error.get("code")
        output["message"] = job.error.get("message", "")
    return output


def task_body(job: Job, presenter: Presenter, request_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": request_id, "output": task_output(job, presenter)}
    if JobStatus(job.status) is JobStatus.SUCCEEDED:
        usage = canonical_usage((job.upstream or {}).get("usage"))
        if usage is not None:
            body["usage"] = usage
    return body


def unknown_task(task_id: str, request_id: str) -> dict[str, Any]:
    """What DashScope answers (HTTP 200) for a task it does not know, or that another account owns (§3.5)."""
    return {"request_id": request_id, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}


def list_row(job: Job, *, endpoint: str) -> dict[str, Any]:
    """One row of `GET /tasks` (§4.2): epoch-ms times, `end_time` only once finished."""
    row: dict[str, Any] = {
        "task_id": job.id,
        "status": TASK_STATUS[JobStatus(job.status)],
        "model_name": job.model,
        "gmt_create": epoch_ms(job.created_at),
        "user_api_unique_key": f"apikey:v1:aigc:{endpoint}:video-synthesis:{job.model}",
    }
    if job.submitted_at is not None:
        row["start_time"] = epoch_ms(job.submitted_at)
    if job.finished_at is not None:
        row["end_time"] = epoch_ms(job.finished_at)
    return row
