"""What a stored video is against what was asked: warnings, and the video-seconds the job counts."""

from __future__ import annotations

from typing import Any

import pytest

from app.jobs.delivery import billable_seconds, delivery_warnings

ASKED: dict[str, Any] = {"duration": 9, "expected_size": "1280*720"}


def result(duration: float, width: int = 1280, height: int = 720) -> dict[str, Any]:
    return {"duration": duration, "width": width, "height": height}


@pytest.mark.parametrize(
    ("delivered", "counted"),
    [
        (9.0, 9.0),
        (9.04, 9.0),  # a frame long, as Wan's output often is: as asked
        (8.6, 9.0),  # within the tolerance
        (5.0, 5.0),  # short: what was delivered
        (4.967, 4.967),
        (12.0, 9.0),  # long: never more than asked
    ],
)
def test_quota_counts_what_was_delivered_at_most_what_was_asked(delivered: float, counted: float) -> None:
    assert billable_seconds(ASKED, delivered) == counted


def test_without_an_asked_duration_the_video_counts() -> None:
    assert billable_seconds({}, 5.0404) == 5.04


def test_a_video_as_asked_has_no_warning() -> None:
    assert delivery_warnings(ASKED, result(9.04, 1280, 704)) == []  # a side within one 16-px step
    assert delivery_warnings(ASKED, None) == []


def test_a_shorter_video_and_another_size_are_flagged() -> None:
    assert delivery_warnings(ASKED, result(5.0, 640, 360)) == [
        "the stored video lasts 5 s, not the 9 s asked",
        "the stored video is 640x360, not the 1280x720 expected",
    ]
    assert delivery_warnings({"duration": 5}, result(7.533)) == [
        "the stored video lasts 7.53 s, not the 5 s asked"
    ]
