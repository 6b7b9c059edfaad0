"""Hostile reference images, built in a few milliseconds each (cached: some are 10 MB), for the tests and
`bench/image_check.py`: what a client can send to make the image check slow, huge or wrong."""

from __future__ import annotations

import functools
import io
import struct
import zlib

from PIL import Image

from tests.helpers import image_bytes

MB = 1_000_000


@functools.cache
def marker_flood_jpeg(markers: int = 2_500_000) -> bytes:
    """A 640x360 JPEG with `markers` empty APP1 segments (`FF E1 00 02`) after SOI: ~10 MB that Pillow
    parses one marker at a time in Python, keeping each one in a list."""
    return b"\xff\xd8" + b"\xff\xe1\x00\x02" * markers + image_bytes(640, 360, "JPEG")[2:]


@functools.cache
def scan_flood_jpeg(size: int = 10 * MB) -> bytes:
    """A 2000x2000 progressive JPEG whose last (14-byte) scan is repeated up to `size` bytes: the header is
    normal, but each scan is a pass of the C decoder over the whole image (minutes for all of them)."""
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 2000), (40, 120, 200)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    last_scan = data.rindex(b"\xff\xda")
    scan = data[last_scan:-2]  # up to EOI
    return data[:last_scan] + scan * ((size - len(data)) // len(scan)) + data[last_scan:]


@functools.cache
def chunk_flood_png(size: int = 10 * MB) -> bytes:
    """A 640x360 PNG followed by empty IDAT chunks up to `size` bytes and no IEND: checking every chunk's
    CRC is a Python loop over ~800,000 chunks, and the file is truncated at the end."""
    png = image_bytes(640, 360)
    empty_idat = _chunk(b"IDAT", b"")
    body = png[: png.rindex(b"IEND") - 4]  # without IEND
    return body + empty_idat * ((size - len(body)) // len(empty_idat))


def eps(size: int = 9_500_000) -> bytes:
    """A valid-looking 640x360 EPS of `size` bytes, which Pillow's EPS parser reads one byte at a time."""
    head = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 640 360\n"
    line = b"0" * 254 + b"\n"
    return head + line * max(1, (size - len(head)) // len(line))


def bomb_png(side: int = 30_000) -> bytes:
    """A PNG whose header says `side`x`side` px (RGB), with a few hundred bytes of data."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (3 * side + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def truncated_jpeg(width: int = 640, height: int = 360) -> bytes:
    """A baseline JPEG cut short: the header is whole, the pixel data stops half-way."""
    data = image_bytes(width, height, "JPEG")
    return data[: len(data) // 2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
