"""Small helpers shared by tests: images as data: URIs, waiting on a condition with a deadline."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from PIL import Image

T = TypeVar("T")


def image_bytes(width: int = 640, height: int = 360, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    image = Image.new(mode, (width, height), (40, 120, 200) if mode == "RGB" else None)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def data_uri(
    width: int = 640, height: int = 360, fmt: str = "PNG", mode: str = "RGB", mime: str | None = None
) -> str:
    mime = mime or f"image/{fmt.lower()}"
    return f"data:{mime};base64," + base64.b64encode(image_bytes(width, height, fmt, mode)).decode()


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 30.0, interval: float = 0.02, what: str = ""
) -> T:
    """Await `probe()` until it returns something truthy, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or probe}")
        await asyncio.sleep(interval)
