"""Reference images are checked before anything is stored or spent (fetched URLs: test_image_fetch.py)."""

from __future__ import annotations

import asyncio
import base64
import functools
from dataclasses import replace
from typing import Any

import pytest
from PIL import Image

from app.config import Settings
from app.jobs.images import (
    ALLOWED_FORMATS,
    ChecksBusy,
    ImageChecker,
    ImageLimits,
    check_image,
    inspect_data_uri,
)
from app.providers.base import InvalidInput
from app.wiring import image_limits
from tests.helpers import data_uri, image_bytes
from tests.hostile_images import MB, bomb_png, eps, marker_flood_jpeg, scan_flood_jpeg, truncated_jpeg

LIMITS = image_limits(Settings.model_construct())  # the IMAGE_* defaults


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
    assert "bytes" in refusal(data_uri(640, 360), replace(LIMITS, max_bytes=size - 1))
    assert (
        inspect_data_uri(data_uri(640, 360), "reference_image", replace(LIMITS, max_bytes=size)).size_bytes
        == size
    )


def test_side_limits_are_configurable() -> None:
    assert inspect_data_uri(data_uri(240, 240), "x", replace(LIMITS, min_side=240)).width == 240


def test_bytes_are_checked_by_the_same_rules_whatever_their_source() -> None:
    checked = check_image(image_bytes(640, 400, "WEBP"), "last_frame_image", LIMITS)
    assert (checked.mime, checked.width, checked.height) == ("image/webp", 640, 400)
    with pytest.raises(InvalidInput, match="alpha") as info:
        check_image(image_bytes(640, 360, "PNG", "RGBA"), "last_frame_image", LIMITS)
    assert info.value.field == "last_frame_image"


# --- hostile images (issue 9) ------------------------------------------------------------------


def test_only_the_accepted_formats_are_ever_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's other parsers (EPS reads byte by byte in Python: seconds for 10 MB) never see the bytes."""
    Image.init()
    parsed: list[str] = []
    for name, (factory, accept) in list(Image.OPEN.items()):
        if name not in ALLOWED_FORMATS:
            monkeypatch.setitem(Image.OPEN, name, (_recorded(name, factory, parsed), accept))
    others = [eps(4096), image_bytes(640, 360, "GIF"), image_bytes(640, 360, "TIFF")]
    others += [image_bytes(640, 360, "PPM"), b"hello world" * 100]
    for data in others:
        with pytest.raises(InvalidInput) as info:
            check_image(data, "reference_image", LIMITS, declared_mime="image/png")
        assert info.value.field == "reference_image"
    assert parsed == []
    assert "EPS images are not accepted" in check_refusal(eps(4096))
    assert "not a readable image" in check_refusal(image_bytes(640, 360, "PPM"))


@pytest.mark.parametrize("side", [30_000, 10_000])
def test_a_decompression_bomb_is_refused_naming_the_field(side: int) -> None:
    # 30000² is past Pillow's error limit; 10000² only past its warning, an error under pytest
    # (elsewhere Pillow warns, and the side check refuses it: test_refusals_say_why).
    message = check_refusal(bomb_png(side))
    assert "far larger than 2000×2000 px" in message


def test_a_truncated_or_corrupt_image_is_refused() -> None:
    assert "truncated or corrupt" in check_refusal(truncated_jpeg())
    png = image_bytes(640, 360)
    assert "truncated or corrupt" in check_refusal(png[: len(png) // 2])
    idat = png.index(b"IDAT") + 6
    bad_crc = png[:idat] + bytes([png[idat] ^ 0xFF]) + png[idat + 1 :]
    assert "truncated or corrupt" in check_refusal(bad_crc)


def test_a_marker_flood_is_refused_without_parsing_it_all() -> None:
    """2.5 million empty segments after SOI: Pillow would parse (and keep) every one."""
    assert "header is abnormal" in check_refusal(marker_flood_jpeg())


def test_a_check_stops_at_its_deadline() -> None:
    """Thousands of progressive scans: minutes of decoding, stopped between two reads of the data."""
    message = check_refusal(scan_flood_jpeg(MB), timeout_s=0.3)
    assert message == "the image took too long to decode (more than 0.3 s)"


async def test_checks_run_off_the_event_loop() -> None:
    with ImageChecker(LIMITS, concurrency=2, timeout_s=0.3) as checker:
        check = asyncio.ensure_future(checker.check_data_uri(_scan_flood_uri(), "reference_image"))
        ticks_while_checking = 0
        while not check.done():
            await asyncio.sleep(0.01)
            ticks_while_checking += not check.done()
        with pytest.raises(InvalidInput, match="too long"):
            await check
    assert ticks_while_checking > 0  # a check on the loop would have finished before the first tick


async def test_a_check_waits_a_bounded_time_for_a_free_checker() -> None:
    with ImageChecker(LIMITS, concurrency=1, timeout_s=0.5, wait_s=0.05) as checker:
        slow = asyncio.ensure_future(checker.check_data_uri(_scan_flood_uri(), "reference_image"))
        await asyncio.sleep(0)  # the slow check takes the only checker
        with pytest.raises(ChecksBusy, match="last_frame_image: every image checker stayed busy"):
            await checker.check_data_uri(data_uri(640, 360), "last_frame_image")
        with pytest.raises(InvalidInput, match="too long"):
            await slow
        # Its thread is done: the checker is free again.
        assert (await checker.check_data_uri(data_uri(640, 360), "last_frame_image")).width == 640


def check_refusal(data: bytes, *, timeout_s: float | None = 2.0) -> str:
    with pytest.raises(InvalidInput) as info:
        check_image(data, "reference_image", LIMITS, timeout_s=timeout_s)
    assert info.value.field == "reference_image"
    return info.value.message


@functools.cache
def _scan_flood_uri() -> str:
    return "data:image/jpeg;base64," + base64.b64encode(scan_flood_jpeg(MB)).decode()


def _recorded(name: str, factory: Any, parsed: list[str]) -> Any:
    def opened(*args: Any, **kwargs: Any) -> Any:
        parsed.append(name)
        return factory(*args, **kwargs)

    return opened
