"""parse_url_expiry: when a signed result URL stops working."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.storage.copy import parse_url_expiry


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/x.mp4?Expires=1700000000&OSSAccessKeyId=k&Signature=s",
            datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        ),
        (
            "https://h/x.mp4?OSSAccessKeyId=k&Expires=1700000000",
            datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        ),
        (
            "https://h/x.mp4?x-oss-date=20250101T000000Z&x-oss-expires=86400&x-oss-signature=s",
            datetime(2025, 1, 2, tzinfo=UTC),
        ),
        (
            "https://h/x.mp4?X-Amz-Date=20250101T120000Z&X-Amz-Expires=3600",
            datetime(2025, 1, 1, 13, tzinfo=UTC),
        ),
        ("https://h/x.mp4", None),
        ("https://h/x.mp4?Expires=", None),
        ("https://h/x.mp4?Expires=soon", None),
        ("https://h/x.mp4?Expires=99999999999999999999", None),
        ("https://h/x.mp4?x-oss-date=garbage&x-oss-expires=10", None),
    ],
)
def test_parse_url_expiry(url: str, expected: datetime | None) -> None:
    assert parse_url_expiry(url) == expected
