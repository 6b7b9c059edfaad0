"""List cursors: what encode_cursor writes decodes back; anything else a client sends is a ValueError."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from app.jobs.models import Job
from app.jobs.repository import decode_cursor, encode_cursor


def forge(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_an_issued_cursor_decodes_to_its_row(created_at: datetime) -> None:
    job = Job(id="job_0123456789abcdef01234567", created_at=created_at)
    assert decode_cursor(encode_cursor(job)) == (created_at, job.id)


@pytest.mark.parametrize(
    "cursor",
    [
        forge(b"0001-01-01T00:00:00+14:00|job_abc"),  # converting to UTC overflows
        forge(b"9999-12-31T23:59:59-14:00|job_abc"),
        forge(b"2026-11-21T10:00:00+02:00|job_abc"),  # we only write UTC
        forge(b"2026-11-21T10:00:00|job_abc"),  # naive
        forge(b"2026-11-21 10:00:00+00:00|job_abc"),  # not the form we write
        forge(b"2026-13-01T00:00:00+00:00|job_abc"),
        forge(b"99999-01-01T00:00:00+00:00|job_abc"),
        forge(b"2026-11-21T10:00:00+00:00"),  # no separator
        forge(b"2026-11-21T10:00:00+00:00|"),
        forge(b"2026-11-21T10:00:00+00:00|msg_abc"),
        forge(b"2026-11-21T10:00:00+00:00|job_a\x00b"),
        forge(b"2026-11-21T10:00:00+00:00|job_" + b"a" * 200),
        forge(b"\xff\xfe|job_abc"),  # not UTF-8
        "nope",
        "!!!!",
        "é",
        "",
        "a" * 10_000,
    ],
)
def test_anything_else_is_a_value_error(cursor: str) -> None:
    with pytest.raises(ValueError, match=r"^not a cursor issued by this service"):
        decode_cursor(cursor)
