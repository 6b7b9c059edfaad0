"""`Range` headers for content the gateway streams itself (S3 in proxy mode).

Local files are served by Starlette's `FileResponse`, which parses `Range` on its own; `parse_range` gives
streamed content the same answers for the same header (400 malformed, 416 unsatisfiable, 206 one range),
so a client cannot tell the stores apart. One difference: several ranges get the whole body (a `200`, which
RFC 9110 §14.2 allows) instead of a multipart answer, since one S3 request reads one range. Video players
ask for one range at a time.
"""

from __future__ import annotations

#: More ranges than this in one header are ignored (the whole body is sent), as FileResponse does.
MAX_RANGES = 100


class MalformedRange(ValueError):
    """The header cannot be read as byte ranges: answered 400."""


class UnsatisfiableRange(ValueError):
    """A range starts at or past the end: answered 416 with `Content-Range: bytes */size`."""


def _ranges(spec: str, size: int) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for raw in spec.split(","):
        part = raw.strip()
        # Empty parts, a lone dash, or anything not `start-end` is skipped, as FileResponse does.
        if not part or part == "-" or "-" not in part:
            continue
        first, last = (s.strip() for s in part.split("-", 1))
        try:
            if first:
                start = int(first)
                stop = int(last) + 1 if last and int(last) < size else size
            else:
                start, stop = max(size - int(last), 0), size  # a suffix: the last N bytes
        except ValueError:
            continue
        ranges.append((start, stop))
    return ranges


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range `[start, stop)` that `header` asks of an object of `size` bytes, or None to send
    the whole object (too many or several disjoint ranges). Raises MalformedRange or UnsatisfiableRange."""
    units, sep, spec = header.partition("=")
    if not sep:
        raise MalformedRange("Malformed range header.")
    if units.strip().lower() != "bytes":
        raise MalformedRange("Only support bytes range")
    if spec.count(",") + 1 > MAX_RANGES:
        return None
    ranges = _ranges(spec, size)
    if not ranges:
        raise MalformedRange("Range header: range must be requested")
    if any(not 0 <= start < size for start, _ in ranges):
        raise UnsatisfiableRange(f"bytes */{size}")
    if any(start >= stop for start, stop in ranges):
        raise MalformedRange("Range header: start must be less than end")
    ranges.sort()
    merged = [ranges[0]]
    for start, stop in ranges[1:]:
        last_start, last_stop = merged[-1]
        if start <= last_stop:
            merged[-1] = (last_start, max(last_stop, stop))
        else:
            merged.append((start, stop))
    return merged[0] if len(merged) == 1 else None
