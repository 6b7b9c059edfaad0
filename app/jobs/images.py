"""Reference images: check them (format, alpha, pixel size, bytes, a full decode) and hash them before
anything is spent.

Bytes from either source go through one checker, `check_image`: a `data:` URI is decoded here, and an
`http(s)://` URL is fetched by `fetch.py` (under the SSRF guard) and then sent upstream as a `data:` URI,
so what DashScope renders is exactly what was checked and hashed. `oss://` URLs (DashScope's temporary
uploads) cannot be fetched by us and are passed through as given.

The bytes are the client's, and decoding them is CPU work, so the checks are bounded:
- `ImageChecker` runs each check (base64 decode, parse, full decode, hash) in a small thread pool of its
  own, never on the event loop; at most `concurrency` run at once, and a check waits a bounded time for a
  free thread (`ChecksBusy` → 503 with Retry-After), so a flood cannot queue work forever.
- Pillow only ever sees JPEG, PNG, BMP and WEBP (`Image.open(formats=…)`): its other parsers (EPS, …,
  some of them slow Python loops over every byte) never run on client bytes.
- Pillow reads through `_GuardedReader`: a thread cannot be killed, but Pillow's marker and chunk loops and
  its block-wise decode all call `read`, which raises once the deadline (`timeout_s`) has passed, so a
  pathological file stops instead of running on in the background. While the header is parsed, reads
  are also counted: a real header is a few dozen segments, a marker flood is millions (and Pillow keeps
  every one in memory), so it is refused at once.
- The sides are checked from the header before any pixel is decoded (Pillow's own decompression-bomb
  check refuses absurd sizes while opening), then the image is decoded fully, so a truncated or corrupt
  file is refused here rather than by DashScope; a PNG's chunk CRCs are verified too.
Every refusal is an `InvalidInput` naming the field (the API answers 422).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hashlib
import io
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from PIL import Image, UnidentifiedImageError

from app.jobs.fetch import ImageFetcher
from app.providers.base import ImageInput, InvalidInput

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Formats Wan accepts (docs/PROTOCOL.md §2.6), by Pillow's format name → MIME type.
ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
_PILLOW_FORMATS = tuple(ALLOWED_FORMATS)
_ACCEPTED = "JPEG, PNG, BMP or WEBP"
#: Formats people send that Wan does not take, named by their signature (never parsed) in the refusal.
_OTHER_SIGNATURES = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF-", "PDF"),
)
_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}
#: Reads allowed while Pillow parses the header (about 3–4 per segment; real headers have a few dozen).
HEADER_READS = 20_000
#: Bytes handed to the JPEG decoder per call (Pillow's default is 64 KiB). The deadline is checked between
#: reads, and a progressive JPEG can pack thousands of tiny scans, each a pass over the whole image, into
#: one block: 1 KiB keeps one call well under a second at 2000×2000 px and costs a normal decode nothing.
JPEG_DECODE_BLOCK = 1024

_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/x-ms-bmp": "image/bmp", "image/x-bmp": "image/bmp"}
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,", re.I)
_FETCHED_SCHEMES = ("https://", "http://")
_URL_SCHEMES = (*_FETCHED_SCHEMES, "oss://")


@dataclass(frozen=True)
class ImageLimits:
    """IMAGE_MIN_SIDE_PX, IMAGE_MAX_SIDE_PX, IMAGE_MAX_BYTES (built by app/wiring.py)."""

    min_side: int
    max_side: int
    max_bytes: int


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


class ChecksBusy(Exception):
    """Every checker thread stayed busy for the whole wait: the gateway is overloaded, not the input wrong."""


class ImageChecker:
    """Runs image checks off the event loop: in a pool of `concurrency` threads of its own, each check
    within `timeout_s`, and no check waiting longer than `wait_s` (default: `timeout_s`) for a thread.
    `close()` (the lifespan calls it) stops the pool; a check still running ends at its deadline."""

    def __init__(
        self,
        limits: ImageLimits,
        *,
        concurrency: int,
        timeout_s: float,
        wait_s: float | None = None,
    ) -> None:
        self.limits = limits
        self.timeout_s = timeout_s
        self.wait_s = timeout_s if wait_s is None else wait_s
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="image-check")
        # One slot per thread, held until the thread is done (not until the caller stops waiting), so
        # work never piles up inside the pool, even when requests that started it have gone away.
        self._slots = asyncio.Semaphore(concurrency)

    async def check_data_uri(self, uri: str, field: str) -> ImageInput:
        return await self._run(
            field, functools.partial(inspect_data_uri, uri, field, self.limits, self.timeout_s)
        )

    async def check_fetched(self, data: bytes, url: str, field: str) -> ImageInput:
        return await self._run(
            field, functools.partial(inspect_fetched, data, url, field, self.limits, self.timeout_s)
        )

    async def _run(self, field: str, work: Callable[[], T]) -> T:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise ChecksBusy(
                f"{field}: every image checker stayed busy for {self.wait_s:g} s; retry shortly"
            ) from None
        loop = asyncio.get_running_loop()
        try:
            job = self._pool.submit(work)
        except BaseException:
            self._slots.release()
            raise
        job.add_done_callback(functools.partial(_release_on, loop, self._slots))
        return await asyncio.wrap_future(job)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> ImageChecker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _release_on(loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore, _: Future[Any]) -> None:
    """Give the slot back on the loop's thread (asyncio objects are not thread-safe)."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for the slot any more
        loop.call_soon_threadsafe(slots.release)


async def inspect_image(uri: str, field: str, checker: ImageChecker, fetcher: ImageFetcher) -> ImageInput:
    """Validate a reference image given as a URL or a base64 `data:` URI; http(s) URLs are fetched.
    Raises InvalidInput(field), or ChecksBusy."""
    lower = uri.lower()
    if lower.startswith(_URL_SCHEMES):
        if any(c.isspace() for c in uri):
            raise InvalidInput(field, "the URL contains whitespace")
        if not lower.startswith(_FETCHED_SCHEMES):
            return ImageInput(uri=uri)  # oss://: only DashScope can read it
        fetched = await fetcher.fetch(uri, field)
        return await checker.check_fetched(fetched.data, uri, field)
    return await checker.check_data_uri(uri, field)


def inspect_fetched(
    data: bytes, url: str, field: str, limits: ImageLimits, timeout_s: float | None = None
) -> ImageInput:
    """Check fetched bytes; upstream gets them as a data: URI, and the client's URL is kept to echo."""
    checked = check_image(data, field, limits, timeout_s=timeout_s)
    as_data = f"data:{checked.mime};base64," + base64.b64encode(data).decode("ascii")
    return checked.as_input(as_data, source_url=url)


def inspect_data_uri(uri: str, field: str, limits: ImageLimits, timeout_s: float | None = None) -> ImageInput:
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
    checked = check_image(
        data, field, limits, declared_mime=_MIME_ALIASES.get(declared, declared) or None, timeout_s=timeout_s
    )
    return checked.as_input(uri)


def check_image(
    data: bytes,
    field: str,
    limits: ImageLimits,
    *,
    declared_mime: str | None = None,
    timeout_s: float | None = None,
) -> CheckedImage:
    """The one checker for image bytes, whatever their source: size, format, alpha, sides, a full decode
    within `timeout_s` (None: no limit); and the hash. Blocking CPU work: run it off the event loop."""
    if not data:
        raise InvalidInput(field, "the image is empty")
    if len(data) > limits.max_bytes:
        raise InvalidInput(field, f"the image is {len(data)} bytes; the limit is {limits.max_bytes}")
    other = _other_format(data)
    if other:
        raise InvalidInput(field, f"{other} images are not accepted; use {_ACCEPTED}")

    reader = _GuardedReader(data, deadline=time.monotonic() + timeout_s if timeout_s else math.inf)
    unreadable = f"the data is not a readable image ({_ACCEPTED})"
    with (
        _refusals(field, limits, timeout_s, unreadable),
        Image.open(reader, formats=_PILLOW_FORMATS) as image,
    ):
        fmt = image.format or ""
        width, height = image.size
        has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    reader.header_read()

    actual_mime = ALLOWED_FORMATS.get(fmt)
    if actual_mime is None:  # MPO: a JPEG with more images in it, which Pillow tells apart
        raise InvalidInput(field, f"{fmt or 'this'} images are not accepted; use {_ACCEPTED}")
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

    with _refusals(field, limits, timeout_s, "the image does not decode: it is truncated or corrupt"):
        _decode_fully(reader, fmt)
    return CheckedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        mime=actual_mime,
        width=width,
        height=height,
        size_bytes=len(data),
    )


def _decode_fully(reader: _GuardedReader, fmt: str) -> None:
    """Decode every pixel (sides already checked, so at most max_side² of them), raising what Pillow
    raises for a truncated or corrupt file."""
    if fmt == "PNG":
        # load() does not check the chunks' CRCs; verify() does, and leaves the image unusable.
        reader.seek(0)
        with Image.open(reader, formats=("PNG",)) as image:
            image.verify()
    reader.seek(0)
    with Image.open(reader, formats=(fmt,)) as image:
        if fmt == "JPEG":
            image.decodermaxblock = JPEG_DECODE_BLOCK
        image.load()


def _other_format(data: bytes) -> str | None:
    for signature, name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return name
    return _HEIF_BRANDS.get(data[8:12]) if data[4:8] == b"ftyp" else None


class _TimedOut(Exception):
    """The check passed its deadline (raised from inside Pillow, through its `read` calls)."""


class _HeaderFlood(Exception):
    """Too many reads while the header was parsed."""


class _GuardedReader(io.BytesIO):
    """The image bytes as Pillow reads them: each `read` first checks the deadline and, until
    `header_read()`, the header's read budget."""

    def __init__(self, data: bytes, *, deadline: float) -> None:
        super().__init__(data)
        self._deadline = deadline
        self._header_reads_left: int | None = HEADER_READS

    def header_read(self) -> None:
        self._header_reads_left = None

    def read(self, size: int | None = -1, /) -> bytes:
        if time.monotonic() > self._deadline:
            raise _TimedOut
        if self._header_reads_left is not None:
            self._header_reads_left -= 1
            if self._header_reads_left < 0:
                raise _HeaderFlood
        return super().read(size)


@contextlib.contextmanager
def _refusals(field: str, limits: ImageLimits, timeout_s: float | None, unreadable: str) -> Iterator[None]:
    """Turn whatever Pillow raises on these bytes into an InvalidInput naming the field."""
    try:
        yield
    except _TimedOut:
        raise InvalidInput(field, f"the image took too long to decode (more than {timeout_s:g} s)") from None
    except _HeaderFlood:
        raise InvalidInput(
            field, "the image's header is abnormal: thousands of segments before the pixel data"
        ) from None
    # The warning is an exception only where warnings are errors (tests); elsewhere Pillow just warns
    # and check_image's side check refuses the image.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(
            field,
            f"the image is far larger than {limits.max_side}×{limits.max_side} px (a decompression bomb); "
            f"each side must be {limits.min_side}–{limits.max_side} px",
        ) from None
    except UnidentifiedImageError:
        raise InvalidInput(field, unreadable) from None
    # Pillow raises a zoo of types on malformed input (OSError, SyntaxError, ValueError, EOFError,
    # struct.error, IndexError, zlib.error, …); whichever it is, it is the bytes' fault.
    except Exception as exc:
        log.debug("image refused: %s: %s", type(exc).__name__, exc)
        raise InvalidInput(field, unreadable) from None
