"""`Prefer: wait=N` (RFC 7240) is read wherever it stands in the header, and capped at 60 s."""

from __future__ import annotations

import pytest

from app.api.jobs import parse_prefer_wait


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("wait=10", 10),
        ("respond-async, wait=5", 5),
        ('wait="7"', 7),
        ("WAIT = 3", 3),
        ("wait=600", 60),
        ("handling=lenient", None),
        ("nowait=5", None),
        ("wait=" + "9" * 5000, 60),  # beyond int()'s digit limit: still just a long wait
        ("wait=007", 7),
    ],
)
def test_parse_prefer_wait(header: str | None, expected: int | None) -> None:
    assert parse_prefer_wait(header) == expected
