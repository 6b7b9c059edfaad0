"""Reference images: check them (format, alpha, pixel size, bytes) and hash them before anything is spent.

Bytes from either source go through one checker, `check_image`: a `data:` URI is decoded here, and an
`http(s)://` URL is fetched by `fetch.py` (under the SSRF guard) and then sent upstream as a `data:` URI,
so what DashScope renders is exactly what was checked and hashed. `oss://` URLs (DashScope's temporary
uploads) cannot be fetched by us and are passed through as given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from app.jobs.fetch import ImageFetcher
from app.providers.base import ImageInput, InvalidInput

#: Formats Wan accepts (dashscope-protocol.md §2.6), by Pillow's format name → MIME type.
ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/x-ms-bmp": "image/bmp", "image/x-bmp": "image/bmp"}
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,", re.I)
_FETCHED_SCHEMES = ("https://", "http://")
_URL_SCHEMES = (*_FETCHED_SCHEMES, "oss://")


@dataclass(frozen=True)
class ImageLimits:
    min_side: int = 360
    max_side: int = 2000
    max_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True)
class CheckedImage:
    """What `check_image` learnt from the bytes."""

    sha256: str
    mime: str
    width: int
    height: int
    size_bytes: int

    def as_input(self, uri: str, *, source_url: str | None = None) -> ImageInput:
        return ImageInput(
            uri=uri,
            source_url=source_url,
            sha256=self.sha256,
            mime=self.mime,
            width=self.width,
            height=self.height,
            size_bytes=self.size_bytes,
        )


async def inspect_image(uri: str, field: str, limits: ImageLimits, fetcher: ImageFetcher) -> ImageInput:
    """Validate a reference image given as a URL or a base64 `data:` URI; http(s) URLs are fetched.
    Raises InvalidInput(field)."""
    lower = uri.lower()
    if lower.startswith(_URL_SCHEMES):
        if any(c.isspace() for c in uri):
            raise InvalidInput(field, "the URL contains whitespace")
        if not lower.startswith(_FETCHED_SCHEMES):
            return ImageInput(uri=uri)  # oss://: only DashScope can read it
        fetched = await fetcher.fetch(uri, field)
        checked = check_image(fetched.data, field, limits)
        # Upstream gets the checked bytes as a data: URI; the client's URL is kept to echo.
        as_data = f"data:{checked.mime};base64," + base64.b64encode(fetched.data).decode("ascii")
        return checked.as_input(as_data, source_url=uri)
    return inspect_data_uri(uri, field, limits)


def inspect_data_uri(uri: str, field: str, limits: ImageLimits) -> ImageInput:
    """Decode and check a `data:image/<type>;base64,` URI. Raises InvalidInput(field)."""
    if not uri.lower().startswith("data:"):
        raise InvalidInput(
            field, "must be an https:// or oss:// URL, or a data:image/<type>;base64,<data> URI"
        )
    match = _DATA_URI.match(uri)
    if not match:
        raise InvalidInput(field, "a data: URI must look like data:image/png;base64,<data>")
    payload = uri[match.end() :]
    # Reject before decoding: base64 inflates by 4/3.
    if len(payload) * 3 // 4 > limits.max_bytes + 3:
        raise InvalidInput(field, f"the image is larger than {limits.max_bytes} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "the data: URI payload is not valid base64") from None
    declared = (match.group("mime") or "").lower()
    checked = check_image(data, field, limits, declared_mime=_MIME_ALIASES.get(declared, declared) or None)
    return checked.as_input(uri)


def check_image(
    data: bytes, field: str, limits: ImageLimits, *, declared_mime: str | None = None
) -> CheckedImage:
    """The one checker for image bytes, whatever their source: size, format, alpha, sides; and the hash."""
    if not data:
        raise InvalidInput(field, "the image is empty")
    if len(data) > limits.max_bytes:
        raise InvalidInput(field, f"the image is {len(data)} bytes; the limit is {limits.max_bytes}")

    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            width, height = image.size
            has_alpha = image.mode in ("RGBA", "LA", "PA") or (
                image.mode == "P" and "transparency" in image.info
            )
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidInput(field, "the data is not a readable image (JPEG, PNG, BMP or WEBP)") from None

    actual_mime = ALLOWED_FORMATS.get(fmt)
    if actual_mime is None:
        raise InvalidInput(field, f"{fmt or 'this'} images are not accepted; use JPEG, PNG, BMP or WEBP")
    if declared_mime and declared_mime != actual_mime:
        raise InvalidInput(field, f"declared as {declared_mime} but the bytes are {actual_mime}")
    if fmt == "PNG" and has_alpha:
        raise InvalidInput(field, "PNG images with an alpha channel are not accepted; flatten it first")
    for side_name, side in (("width", width), ("height", height)):
        if not limits.min_side <= side <= limits.max_side:
            raise InvalidInput(
                field,
                f"image {side_name} is {side} px; each side must be {limits.min_side}–{limits.max_side} px",
            )
    return CheckedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        mime=actual_mime,
        width=width,
        height=height,
        size_bytes=len(data),
    )
