"""Upstream answers are classified once: transient (retry later) or permanent (the request is wrong),
and parsed tolerantly (numbers as strings, unknown keys, the FAILED code inside `output`)."""

from __future__ import annotations

import httpx
import pytest

from app.providers.base import PermanentError, TaskState, TransientError
from app.providers.dashscope.client import classify
from app.providers.dashscope.schemas import parse_list, parse_task
from app.retry import backoff, parse_retry_after


def response(
    status: int, body: object = None, text: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def err(status: int, code: str, message: str = "m") -> httpx.Response:
    return response(status, {"code": code, "message": message, "request_id": "r1"})


@pytest.mark.parametrize(
    "resp",
    [
        err(408, "RequestTimeOut"),
        err(429, "Throttling.RateQuota"),
        err(500, "InternalError"),
        err(503, "ModelUnavailable"),
        err(504, "GatewayTimeout"),
        response(502, text="<html>Bad Gateway</html>"),
        response(400, text="not json"),
    ],
)
def test_transient(resp: httpx.Response) -> None:
    assert isinstance(classify(resp), TransientError)


@pytest.mark.parametrize(
    ("resp", "code"),
    [
        (err(400, "InvalidParameter"), "InvalidParameter"),
        (err(401, "InvalidApiKey"), "InvalidApiKey"),
        (err(403, "AccessDenied"), "AccessDenied"),
        (err(400, "DataInspectionFailed"), "DataInspectionFailed"),
        (err(404, "ModelNotFound"), "ModelNotFound"),
        (err(400, "Arrearage"), "Arrearage"),
        (err(429, "PrepaidBillOverdue"), "PrepaidBillOverdue"),
    ],
)
def test_permanent_keeps_code_and_request_id(resp: httpx.Response, code: str) -> None:
    error = classify(resp)
    assert isinstance(error, PermanentError)
    assert (error.code, error.request_id, error.status) == (code, "r1", resp.status_code)


def test_retry_after_is_honoured_in_every_form() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after": "7"})) == 7
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500"})) == 1.5
    assert parse_retry_after(httpx.Headers({"retry-after": "99999"})) == 600  # capped
    assert parse_retry_after(httpx.Headers({})) is None
    error = classify(response(429, {"code": "Throttling"}, headers={"Retry-After": "3"}))
    assert isinstance(error, TransientError) and error.retry_after == 3


def test_quota_exhaustion_waits_at_least_a_minute() -> None:
    error = classify(err(429, "Throttling.AllocationQuota"))
    assert isinstance(error, TransientError) and (error.retry_after or 0) >= 60


def test_task_parsing_is_tolerant() -> None:
    task = parse_task(
        {
            "request_id": "r",
            "output": {
                "task_id": "t",
                "task_status": "SUCCEEDED",
                "video_url": "https://x/v.mp4",
                "new_key": 1,
            },
            "usage": {"duration": "10", "SR": "720", "video_count": 1.0, "audio": True, "ratio": "16:9"},
        }
    )
    assert task.state is TaskState.SUCCEEDED
    assert task.usage == {"duration": 10, "SR": 720, "video_count": 1, "audio": True, "ratio": "16:9"}


def test_failed_task_carries_its_code_inside_output() -> None:
    task = parse_task(
        {
            "output": {
                "task_id": "t",
                "task_status": "FAILED",
                "code": "InvalidParameter",
                "message": "The size is not match",
            }
        }
    )
    assert (task.state, task.code, task.message) == (
        TaskState.FAILED,
        "InvalidParameter",
        "The size is not match",
    )


def test_output_without_status_is_a_transient_oddity() -> None:
    with pytest.raises(TransientError):
        parse_task({"output": {"task_id": "t"}})


def test_list_rows_carry_epoch_millisecond_times() -> None:
    rows, pages = parse_list(
        {
            "total_page": "3",
            "data": [
                {
                    "task_id": "a",
                    "status": "RUNNING",
                    "model_name": "wan2.6-i2v-flash",
                    "gmt_create": 1745568428109,
                },
                {"no_task_id": True},
            ],
        }
    )
    assert pages == 3 and [r.task_id for r in rows] == ["a"]
    assert rows[0].created_at is not None and rows[0].created_at.year == 2025


def test_backoff_grows_is_capped_and_never_undercuts_retry_after() -> None:
    assert 1.0 <= backoff(0, 1.0) <= 1.25
    assert 8.0 <= backoff(3, 1.0) <= 10.0
    assert backoff(40, 1.0) <= 300 * 1.25
    assert backoff(0, 1.0, retry_after=42) == 42
    assert backoff(40, 1.0, cap=60) <= 60 * 1.25
