"""Input media as the service's "data inspection" sees it (§2.6): decode images and check their limits;
the bytes of an image that passes go on to the result clip (clips.py shows it).

Images come as data: URIs, `oss://` keys of earlier uploads, or http(s) URLs. Nothing beyond 127.0.0.1
is reachable here, so [EMU] an http(s) image on another host is not fetched and is taken to be the
configured `assumed_image_size` (1280x720, 16:9); loopback URLs are fetched and inspected for real.
Audio URLs are only checked for their scheme (and, for `oss://`, that the upload exists).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from app.sandbox.config import SandboxConfig
from app.sandbox.errors import (
    INVALID_URL,
    MEDIA_DOWNLOAD,
    MEDIA_FORMAT,
    MEDIA_NOT_FOUND,
    ApiError,
    invalid,
)
from app.sandbox.uploads import UploadStore
from app.tls import client_context

IMAGE_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP"})
_INSPECTION = "InvalidParameter.DataInspection"
_FETCH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class InputImage:
    """An input image as inspected: its size, and its bytes (None: a URL the sandbox cannot reach)."""

    width: int
    height: int
    data: bytes | None


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MediaInspector:
    def __init__(self, config: SandboxConfig, uploads: UploadStore) -> None:
        self._config = config
        self._uploads = uploads
        self._http: httpx.AsyncClient | None = None  # created on first fetch: building one costs ~40 ms

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def image(self, url: str) -> InputImage:
        """The image at `url`, after the format/size checks. Raises ApiError."""
        if url.startswith("data:"):
            data = await asyncio.to_thread(self._decode_data_uri, url)
        elif url.startswith("oss://"):
            data = await self._uploaded(url)
        else:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise invalid(INVALID_URL, "InvalidURL")
            if not is_loopback_host(parts.hostname):
                return InputImage(*self._config.assumed_image_size, data=None)
            data = await self._fetch(url)
        width, height = await asyncio.to_thread(self._check_image, data)
        return InputImage(width, height, data)

    async def check_audio(self, url: str) -> None:
        if url.startswith("oss://"):
            await self._uploaded(url)
        elif urlsplit(url).scheme not in ("http", "https"):
            raise invalid(INVALID_URL, "InvalidURL")

    async def _uploaded(self, url: str) -> bytes:
        data = await asyncio.to_thread(self._uploads.read, url.removeprefix("oss://"))
        if data is None:
            raise invalid(MEDIA_NOT_FOUND, _INSPECTION)
        return data

    def _too_large(self) -> ApiError:
        megabytes = self._config.image_max_bytes / (1024 * 1024)
        return invalid(
            f"The image size is too large, please make sure that the image is smaller than {megabytes:g}MB."
        )

    def _decode_data_uri(self, url: str) -> bytes:
        header, sep, payload = url.partition(",")
        if not sep or not header.endswith(";base64"):
            raise invalid("The data URI is invalid, it must look like data:{MIME_type};base64,{data}.")
        # base64 grows data by 4/3: refuse an oversized payload before decoding it.
        if len(payload) * 3 // 4 > self._config.image_max_bytes + 3:
            raise self._too_large()
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(MEDIA_FORMAT, _INSPECTION) from None

    async def _fetch(self, url: str) -> bytes:
        limit = self._config.image_max_bytes
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=_FETCH_TIMEOUT_S, trust_env=False, verify=client_context(trust_env=False)
            )
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise invalid(MEDIA_DOWNLOAD, _INSPECTION)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise self._too_large()
                return bytes(body)
        except httpx.HTTPError:
            raise invalid(MEDIA_DOWNLOAD, _INSPECTION) from None

    def _check_image(self, data: bytes) -> tuple[int, int]:
        config = self._config
        if len(data) > config.image_max_bytes:
            raise self._too_large()
        try:
            with Image.open(io.BytesIO(data)) as image:
                image_format, (width, height) = image.format, image.size
        except Image.DecompressionBombError:
            width = height = config.image_max_side_px + 1  # far too many pixels: a resolution error
            image_format = "PNG"
        except (UnidentifiedImageError, OSError, ValueError):
            raise invalid(MEDIA_FORMAT, _INSPECTION) from None
        if image_format not in IMAGE_FORMATS:
            raise invalid(MEDIA_FORMAT, _INSPECTION)
        low, high = config.image_min_side_px, config.image_max_side_px
        if not (low <= width <= high and low <= height <= high):
            raise invalid(
                "The image resolution is invalid, please make sure that the largest length of image is "
                f"smaller than {high}, and the smallest length of image is larger than {low}."
            )
        return width, height
