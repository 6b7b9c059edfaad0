"""Tolerant parsing of DashScope responses: unknown keys ignored, numbers as int, float or string."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.providers.base import ListedTask, ProviderTask, SubmitReceipt, TaskState, TransientError


def number(value: Any) -> int | float | None:
    """`10`, `10.0`, `"10"`, `"720"` → 10 / 720; non-numbers → None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result: float = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return int(result) if result.is_integer() else result


def normalize_usage(raw: Any) -> dict[str, Any]:
    """Numbers become numbers; booleans and other values are kept as they are."""
    if not isinstance(raw, dict):
        return {}
    usage: dict[str, Any] = {}
    for key, value in raw.items():
        parsed = number(value)
        usage[str(key)] = value if parsed is None else parsed
    return usage


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def _state(value: Any) -> TaskState:
    try:
        return TaskState(str(value).upper())
    except ValueError:
        # An undocumented state (the SDK knows SUSPENDED): keep polling as if it were still running.
        return TaskState.RUNNING


def _output(body: Any) -> dict[str, Any]:
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, dict) or not output.get("task_id") or not output.get("task_status"):
        raise TransientError("upstream answered 200 without output.task_id/task_status", status=200)
    return output


def parse_receipt(body: Any) -> SubmitReceipt:
    output = _output(body)
    return SubmitReceipt(
        task_id=str(output["task_id"]),
        request_id=_str(body.get("request_id")),
        state=_state(output["task_status"]),
    )


def parse_task(body: Any) -> ProviderTask:
    output = _output(body)
    return ProviderTask(
        task_id=str(output["task_id"]),
        state=_state(output["task_status"]),
        request_id=_str(body.get("request_id")),
        submit_time=_str(output.get("submit_time")),
        scheduled_time=_str(output.get("scheduled_time")),
        end_time=_str(output.get("end_time")),
        video_url=_str(output.get("video_url")) or None,
        orig_prompt=_str(output.get("orig_prompt")),
        actual_prompt=_str(output.get("actual_prompt")),
        code=_str(output.get("code")),
        message=_str(output.get("message")),
        usage=normalize_usage(body.get("usage")),
    )


def _epoch_ms(value: Any) -> datetime | None:
    parsed = number(value)
    if parsed is None:
        return None
    return datetime.fromtimestamp(parsed / 1000, tz=UTC)


def parse_list(body: Any) -> tuple[list[ListedTask], int]:
    """Rows of a `GET /tasks` page and the total page count (1 when absent)."""
    rows = body.get("data") if isinstance(body, dict) else None
    tasks = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or not row.get("task_id"):
            continue
        tasks.append(
            ListedTask(
                task_id=str(row["task_id"]),
                model=_str(row.get("model_name")),
                state=_state(row.get("status")),
                created_at=_epoch_ms(row.get("gmt_create")) or _epoch_ms(row.get("start_time")),
                request_id=_str(row.get("request_id")),
            )
        )
    pages = number(body.get("total_page")) if isinstance(body, dict) else None
    return tasks, int(pages) if pages else 1
