"""parse_range answers every Range header as Starlette's FileResponse does for local files, so a client
sees the same 206/400/416 whether the video is served from disk or streamed from S3."""

from __future__ import annotations

import pytest
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable

from app.api.byteranges import MalformedRange, UnsatisfiableRange, parse_range

SIZE = 1000
HEADERS = [
    "bytes=0-99",
    "bytes=100-199",
    "bytes=-50",
    "bytes=990-",
    "bytes=0-",
    "bytes=0-5000",
    "bytes=999-999",
    "bytes=-5000",
    "bytes=1000-",
    "bytes=2000-3000",
    "bytes=-0",
    "bytes=5-3",
    "BYTES = 10-19",
    "bytes=10-19,15-29",
    "bytes=0-9, x, 20-",
    "items=0-9",
    "bytes",
    "bytes=",
    "bytes=-",
    "bytes=a-b",
    "bytes=,",
]


def _starlette(header: str) -> object:
    try:
        ranges = FileResponse._parse_range_header(header, SIZE)
    except MalformedRangeHeader:
        return 400
    except RangeNotSatisfiable:
        return 416
    # Several ranges: a multipart answer there, the whole body here (see below).
    return ranges if len(ranges) == 1 else [None]


def _ours(header: str) -> object:
    try:
        wanted = parse_range(header, SIZE)
    except MalformedRange:
        return 400
    except UnsatisfiableRange:
        return 416
    return [wanted]


@pytest.mark.parametrize("header", HEADERS)
def test_range_headers_are_answered_like_for_a_local_file(header: str) -> None:
    assert _ours(header) == _starlette(header)


def test_disjoint_ranges_get_the_whole_body() -> None:
    """FileResponse answers a multipart 206; a streamed object is sent whole (RFC 9110 allows either)."""
    assert len(FileResponse._parse_range_header("bytes=0-9,20-29", SIZE)) == 2
    assert parse_range("bytes=0-9,20-29", SIZE) is None


def test_too_many_ranges_get_the_whole_body() -> None:
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 404, 4))
    assert parse_range(header, SIZE) is None
