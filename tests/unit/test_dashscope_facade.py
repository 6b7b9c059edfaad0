"""The DashScope facade's pure parts: `usage` numbers as numbers, DashScope's time format, and how the
core's errors are said in DashScope's words (app/compat/dashscope/wire.py, errors.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.compat.dashscope.errors import dashscope_name, translate
from app.compat.dashscope.wire import canonical_usage, dashscope_time
from app.errors import FieldError, ServiceUnavailable
from app.jobs.admission import QuotaExceeded
from app.tenants.auth import Unauthorized


def test_usage_numbers_are_numbers_whatever_upstream_sent() -> None:
    usage = {"duration": 10.0, "SR": "720", "video_count": 1, "fps": "29.97", "video_ratio": "standard"}
    assert canonical_usage({**usage, "audio": "true"}) == {
        "duration": 10,
        "SR": 720,
        "video_count": 1,
        "fps": 29.97,
        "video_ratio": "standard",
        "audio": True,
    }
    assert canonical_usage(None) is None


def test_times_as_dashscope_writes_them_in_utc() -> None:
    when = datetime(2025, 9, 25, 11, 7, 28, 590_123, tzinfo=UTC)
    assert dashscope_time(when) == "2025-09-25 11:07:28.590"


@pytest.mark.parametrize(
    ("field", "kf2v", "named"),
    [
        ("reference_image", False, "input.img_url"),
        ("reference_image", True, "input.first_frame_url"),
        ("last_frame_image", True, "input.last_frame_url"),
        ("duration", False, "parameters.duration"),
        ("model", False, "model"),
    ],
)
def test_core_fields_are_named_as_the_client_wrote_them(field: str, kf2v: bool, named: str) -> None:
    assert dashscope_name(field, kf2v=kf2v) == named


def _answer(exc: Exception) -> tuple[int, dict[str, str], dict[str, str]]:
    response = translate(exc)
    return response.status_code, json.loads(bytes(response.body)), dict(response.headers)


def test_core_errors_in_dashscope_codes() -> None:
    status, body, _ = _answer(FieldError("duration", "wan2.6-i2v-flash offers 2-15 s"))
    assert (status, body["code"], body["message"]) == (
        400,
        "InvalidParameter",
        "parameters.duration: wan2.6-i2v-flash offers 2-15 s",
    )
    assert set(body) == {"request_id", "code", "message"}
    quota = QuotaExceeded("too many", headers={"Retry-After": "7"}, extra={"quota": "submits_per_minute"})
    status, body, headers = _answer(quota)
    assert (status, body["code"], headers["retry-after"]) == (429, "Throttling.RateQuota", "7")
    assert "submits_per_minute" in body["message"]
    status, body, _ = _answer(Unauthorized("no key", code="missing_api_key"))
    assert (status, body["code"], body["message"]) == (401, "InvalidApiKey", "No API-key provided.")
    status, body, _ = _answer(ServiceUnavailable("busy", headers={"Retry-After": "1"}))
    assert (status, body["code"]) == (503, "ServiceUnavailable")
    status, body, _ = _answer(RuntimeError("a bug"))
    assert (status, body["code"]) == (500, "InternalError") and "a bug" not in body["message"]
