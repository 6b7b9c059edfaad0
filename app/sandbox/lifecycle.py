"""A task's state as a pure function of its stored timestamps, and the `output`/`usage` JSON of §3.

Times on the wire are `YYYY-MM-DD HH:mm:ss.SSS` in UTC ([EMU]: the real zone is undocumented, the
Beijing examples look like UTC+8; UTC keeps the sandbox unambiguous).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.providers.base import TaskState
from app.providers.dashscope.capabilities import TIER_SR, Sound, get_model
from app.sandbox.store import TaskRecord


def format_time(epoch: float) -> str:
    stamp = datetime.fromtimestamp(epoch, tz=UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"


@dataclass(frozen=True)
class TaskView:
    state: TaskState
    end_time: float | None = None  # terminal states only
    awaiting_clip: bool = False  # due to succeed, but its MP4 is not encoded yet


def view(
    record: TaskRecord, now: float, *, ttl_s: float, clip_ready_at: Callable[[], float | None]
) -> TaskView:
    """The task's state at `now`. `clip_ready_at` (the clip file's mtime, or None) is only consulted
    once the task is due to succeed: SUCCEEDED waits for a playable video_url, and reports the later
    of the planned end and the clip's completion as `end_time`."""
    if now - record.created_at > ttl_s:
        return TaskView(TaskState.UNKNOWN)
    if record.canceled_at is not None:
        return TaskView(TaskState.CANCELED, end_time=record.canceled_at)
    if now < record.start_at:
        return TaskView(TaskState.PENDING)
    if record.end_at is None or now < record.end_at:
        return TaskView(TaskState.RUNNING)
    if record.outcome is not TaskState.SUCCEEDED:
        return TaskView(record.outcome, end_time=record.end_at)
    ready = clip_ready_at()
    if ready is None:
        return TaskView(TaskState.RUNNING, awaiting_clip=True)
    return TaskView(TaskState.SUCCEEDED, end_time=max(record.end_at, ready))


def usage(record: TaskRecord) -> dict[str, Any]:
    """The `usage` object in the model family's shape (§3.2 table)."""
    spec = get_model(record.model)
    if spec is None:
        raise ValueError(f"unknown model {record.model!r}")
    detail = record.detail
    seconds, tier = detail.duration, TIER_SR[detail.resolution]
    match spec.usage_style:
        case "wan2.6":
            result: dict[str, Any] = {
                "duration": seconds,
                "input_video_duration": 0,
                "output_video_duration": seconds,
                "SR": tier,
                "video_count": 1,
            }
            if spec.sound is Sound.OPTIONAL:
                result["audio"] = detail.has_audio
            return result
        case "sr":
            return {"duration": seconds, "SR": tier, "video_count": 1}
        case "wan2.1":
            return {"video_duration": seconds, "video_ratio": "standard", "video_count": 1}
        case "kf2v-flash":
            return {"video_duration": seconds, "video_count": 1, "SR": tier}
        case other:
            raise ValueError(f"no usage shape for style {other!r}")


def rewrite_prompt(prompt: str | None) -> str:
    """A stand-in for the service's LLM prompt rewriting (`actual_prompt`)."""
    base = (prompt or "").strip()
    suffix = "Smooth, natural motion; steady cinematic camera; soft lighting; rich, realistic detail."
    return f"{base} {suffix}" if base else suffix


#: What the `nul` fault appends to each text of a task's answer: U+0000 and a lone surrogate (sent as
#: the JSON escapes `\u0000` and `\ud800`, which any JSON parser accepts).
UNSTORABLE_SUFFIX = "\x00\ud800"


def unstorable(text: str | None) -> str | None:
    return None if text is None else text + UNSTORABLE_SUFFIX


def output(record: TaskRecord, task: TaskView, video_url: str | None = None) -> dict[str, Any]:
    """The `output` object of GET /tasks/{id} (§3.1–3.5); always has task_id and task_status."""
    result: dict[str, Any] = {"task_id": record.task_id, "task_status": task.state.value}
    if task.state is TaskState.UNKNOWN:
        return result
    result["submit_time"] = format_time(record.created_at)
    # CANCELED is only reachable from PENDING, so such a task was never scheduled.
    if task.state in (TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.FAILED):
        result["scheduled_time"] = format_time(record.start_at)
    if task.end_time is not None:
        result["end_time"] = format_time(task.end_time)
    detail = record.detail
    text = unstorable if detail.nul_text else _same
    if task.state is TaskState.FAILED:
        result["code"] = text(detail.code)
        result["message"] = text(detail.message)
    elif task.state is TaskState.SUCCEEDED:
        spec = get_model(record.model)
        if detail.prompt is not None:
            result["orig_prompt"] = text(detail.prompt)
        if spec is not None and spec.actual_prompt and detail.prompt_extend:
            result["actual_prompt"] = text(rewrite_prompt(detail.prompt))
        result["video_url"] = video_url
    return result


def _same(text: str | None) -> str | None:
    return text
