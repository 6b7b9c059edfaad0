"""What was delivered against what was asked: the stored video's probed duration and frame size against the
job's request, for the job's `warnings` and for the video-seconds it counts against quotas.

- **Duration**: within `DURATION_TOLERANCE_S` of the asked `duration` is "as asked" (Wan's real output runs a
  frame or two long or short: 5.04 s for 5). Beyond it, a warning names both, and the job counts the
  seconds delivered, never more than asked: a 5 s video for 9 asked counts 5; 12 s for 9 counts 9.
- **Size**: `expected_size` (the request echo has it when the tier and the image's aspect ratio give one) is
  a prediction — the tier's pixel count at the image's aspect, sides floored to multiples of 16 — so a side
  may differ by up to `SIZE_TOLERANCE_PX` (one rounding step) without a warning.

Pure functions of the stored request and result, so a job that reuses or follows another's video shows
the same warning (its video is just as short), and a change here shows on every job read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DURATION_TOLERANCE_S = 0.5
SIZE_TOLERANCE_PX = 16


def _asked_seconds(request: Mapping[str, Any]) -> float | None:
    asked = request.get("duration")
    return float(asked) if isinstance(asked, int | float) and asked > 0 else None


def _expected_size(request: Mapping[str, Any]) -> tuple[int, int] | None:
    text = request.get("expected_size")
    if not isinstance(text, str):
        return None
    width, _, height = text.partition("*")
    return (int(width), int(height)) if width.isdigit() and height.isdigit() else None


def _seconds(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def billable_seconds(request: Mapping[str, Any], delivered_s: float) -> float:
    """The video-seconds a succeeded job counts: what was asked when the video is as asked, else what was
    delivered, capped at what was asked."""
    asked = _asked_seconds(request)
    if asked is None:
        return round(delivered_s, 3)
    if abs(delivered_s - asked) <= DURATION_TOLERANCE_S:
        return asked
    return round(min(delivered_s, asked), 3)


def delivery_warnings(request: Mapping[str, Any], result: Mapping[str, Any] | None) -> list[str]:
    """Warnings for a stored video that is not what was asked (none when there is no result yet)."""
    if not result:
        return []
    warnings = []
    asked, delivered = _asked_seconds(request), result.get("duration")
    if (
        asked is not None
        and isinstance(delivered, int | float)
        and abs(delivered - asked) > DURATION_TOLERANCE_S
    ):
        warnings.append(f"the stored video lasts {_seconds(delivered)} s, not the {_seconds(asked)} s asked")
    expected, width, height = _expected_size(request), result.get("width"), result.get("height")
    if (
        expected is not None
        and isinstance(width, int)
        and isinstance(height, int)
        and (abs(width - expected[0]) > SIZE_TOLERANCE_PX or abs(height - expected[1]) > SIZE_TOLERANCE_PX)
    ):
        warnings.append(f"the stored video is {width}x{height}, not the {expected[0]}x{expected[1]} expected")
    return warnings
