"""Reference images are checked before anything is stored or spent (fetched URLs: test_image_fetch.py)."""

from __future__ import annotations

import base64

import pytest

from app.jobs.images import ImageLimits, check_image, inspect_data_uri
from app.providers.base import InvalidInput
from tests.helpers import data_uri, image_bytes

LIMITS = ImageLimits()


def refusal(uri: str, limits: ImageLimits = LIMITS) -> str:
    with pytest.raises(InvalidInput) as info:
        inspect_data_uri(uri, "reference_image", limits)
    assert info.value.field == "reference_image"
    return info.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "WEBP"])
def test_accepted_formats_are_measured_and_hashed(fmt: str) -> None:
    image = inspect_data_uri(data_uri(640, 400, fmt), "reference_image", LIMITS)
    assert (image.width, image.height, image.mime) == (640, 400, f"image/{fmt.lower()}")
    assert image.sha256 and len(image.sha256) == 64
    assert image.describe()["kind"] == "data_uri"
    assert "base64" not in str(image.describe())


def test_jpg_alias_is_accepted() -> None:
    assert (
        inspect_data_uri(data_uri(400, 400, "JPEG", mime="image/jpg"), "reference_image", LIMITS).mime
        == "image/jpeg"
    )


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("ftp://example.com/a.png", "URL"),
        ("data:image/png,notbase64", "data:"),
        ("data:image/png;base64,@@@@", "base64"),
        ("data:image/png;base64,", "empty"),
        ("data:image/png;base64," + base64.b64encode(b"hello world").decode(), "readable image"),
        (data_uri(640, 360, "GIF"), "GIF"),
        (data_uri(300, 400), "width is 300"),
        (data_uri(400, 2001), "height is 2001"),
        (data_uri(640, 360, "PNG", "RGBA"), "alpha"),
        (data_uri(640, 360, "JPEG", mime="image/png"), "declared as image/png"),
    ],
)
def test_refusals_say_why(uri: str, words: str) -> None:
    assert words in refusal(uri)


def test_byte_limit_is_configurable() -> None:
    size = len(image_bytes(640, 360))
    assert "bytes" in refusal(data_uri(640, 360), ImageLimits(max_bytes=size - 1))
    assert (
        inspect_data_uri(data_uri(640, 360), "reference_image", ImageLimits(max_bytes=size)).size_bytes
        == size
    )


def test_side_limits_are_configurable() -> None:
    assert inspect_data_uri(data_uri(240, 240), "x", ImageLimits(min_side=240)).width == 240


def test_bytes_are_checked_by_the_same_rules_whatever_their_source() -> None:
    checked = check_image(image_bytes(640, 400, "WEBP"), "last_frame_image", LIMITS)
    assert (checked.mime, checked.width, checked.height) == ("image/webp", 640, 400)
    with pytest.raises(InvalidInput, match="alpha") as info:
        check_image(image_bytes(640, 360, "PNG", "RGBA"), "last_frame_image", LIMITS)
    assert info.value.field == "last_frame_image"
