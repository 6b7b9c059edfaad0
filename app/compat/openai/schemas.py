"""OpenAI's Videos objects as the `openai` SDK parses them (openai-python `types/video.py`,
`video_delete_response.py`, the cursor page of `pagination.py`), and its error envelope."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

VideoStatus = Literal["queued", "in_progress", "completed", "failed"]


class VideoError(BaseModel):
    code: str = Field(
        description="The job's error code (`upstream_failed`, `deadline_exceeded`, …), or `canceled`."
    )
    message: str


class Video(BaseModel):
    """A video job: the gateway's job (the same id at `/v1/jobs/{id}`), in OpenAI's words."""

    id: str
    object: Literal["video"] = "video"
    model: str = Field(description="The Wan model that renders it.")
    status: VideoStatus = Field(
        description="queued/submitted → `queued`, running/storing → `in_progress`, succeeded → `completed`, "
        "failed/canceled → `failed` (with `error.code`)."
    )
    progress: int = Field(ge=0, le=100, description="Rough percentage (the job's `progress`; 0 once failed).")
    created_at: int = Field(description="Unix seconds.")
    completed_at: int | None = Field(default=None, description="Unix seconds when it finished, if it has.")
    expires_at: int | None = Field(
        default=None, description="Unix seconds when the stored video goes, if it ever does (else null)."
    )
    seconds: str = Field(description="The clip's length in seconds, as the model was asked for it.")
    size: str = Field(description="`WxH` of the stored file; before it exists, what is expected.")
    error: VideoError | None = None
    remixed_from_video_id: str | None = None
    prompt: str | None = None


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None
    last_id: str | None = Field(description="Pass as `after` for the next page.")
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = Field(description="The request parameter at fault (`seconds`, `model`, …).")
    code: str | None = Field(description="The gateway's stable machine code (`validation_error`, …).")


class OpenAIError(BaseModel):
    """OpenAI's error envelope: every error under `/v1/videos` (validation, 401, 404, 429, …)."""

    error: OpenAIErrorDetail
