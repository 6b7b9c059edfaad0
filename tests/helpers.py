"""Small helpers shared by tests: images as data: URIs, waiting on a condition with a deadline, a small
real filesystem to fill up."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
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


async def raw_head(
    base_url: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, httpx.Headers, bytes]:
    """Send a HEAD by hand and read until the server closes: the status, the headers, and whatever bytes
    came after the head (a HEAD answer must have none; a client library would not show them)."""
    url = urlsplit(base_url)
    assert url.hostname is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        lines = [f"HEAD {path} HTTP/1.1", "Host: gateway", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        # A guard, not a measure: an answer that never ends (a stream held open) fails here.
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, rest = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = httpx.Headers([(k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in header_lines)])
    return int(status_line.split()[1]), parsed, rest


def self_signed_certificate(folder: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for `host` only, no IP address in it; skips without openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=DNS:{host}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def run_cli(*args: str, env: dict[str, str]) -> str:
    """`wan-gateway ARGS` in a child process; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@contextlib.contextmanager
def small_filesystem(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` mounted at `path` for the block, so a test can really run out of space.

    Mounting needs root (CI runs the tests as root); elsewhere the test is skipped, saying why.
    """
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("needs mount(8) to make a small tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)  # something still holds a file open


def fill_filesystem(directory: Path, *, leave: int) -> Path:
    """Write a file in `directory` that leaves about `leave` bytes free on its filesystem; remove it to
    give the space back."""
    filler = directory / "filler.bin"
    free = shutil.disk_usage(directory).free
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, (free - leave) // 4096 * 4096))
        f.flush()
        os.fsync(f.fileno())
    return filler
