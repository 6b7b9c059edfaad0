"""Reference images: decode and check a `data:` URI (format, pixel size, bytes) before anything is spent.

URLs (`https://`, `oss://`) are passed through as given; they are not fetched here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from app.providers.base import ImageInput, InvalidInput

#: Formats Wan accepts (dashscope-protocol.md §2.6), by Pillow's format name → MIME type.
ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/x-ms-bmp": "image/bmp", "image/x-bmp": "image/bmp"}
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,", re.I)
_URL_SCHEMES = ("https://", "http://", "oss://")


@dataclass(frozen=True)
class ImageLimits:
    min_side: int = 360
    max_side: int = 2000
    max_bytes: int = 10 * 1024 * 1024


def inspect_image(uri: str, field: str, limits: ImageLimits) -> ImageInput:
    """Validate a reference image given as a URL or a base64 `data:` URI. Raises InvalidInput(field)."""
    if uri.lower().startswith(_URL_SCHEMES):
        if any(c.isspace() for c in uri):
            raise InvalidInput(field, "the URL contains whitespace")
        return ImageInput(uri=uri)
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
    declared = (match.group("mime") or "").lower()
    declared = _MIME_ALIASES.get(declared, declared)
    if declared and declared != actual_mime:
        raise InvalidInput(field, f"declared as {declared} but the bytes are {actual_mime}")
    if fmt == "PNG" and has_alpha:
        raise InvalidInput(field, "PNG images with an alpha channel are not accepted; flatten it first")
    for side_name, side in (("width", width), ("height", height)):
        if not limits.min_side <= side <= limits.max_side:
            raise InvalidInput(
                field,
                f"image {side_name} is {side} px; each side must be {limits.min_side}–{limits.max_side} px",
            )
    return ImageInput(
        uri=uri,
        sha256=hashlib.sha256(data).hexdigest(),
        mime=actual_mime,
        width=width,
        height=height,
        size_bytes=len(data),
    )
