"""copy_video: make a durable copy of an upstream result video before its signed URL dies.

The body is streamed into a temp file in `storage.staging_dir()` (bounded memory, sha256 on the way, stopped
as soon as it exceeds `max_bytes`), fsynced, probed, and only then published with `storage.put_file`. Every
failure removes the temp file and raises `CopyError` with a stable `code` and a `transient` flag: the job
poller retries transient ones until the URL expires (`parse_url_expiry`) and fails the job on permanent ones.

A `CopyError` has two texts: `message`, in our own words, which clients see (a job's error, its retry
reason), and `detail`, for the log and operators. Paths never go into `message`: an `OSError` is described
by its `strerror`, never by `str(exc)`, which names the file (`…/.staging/dl-….part`).

A disk too full for the video is `storage_failed` (transient), with `needed_bytes` set: the copy checks the
staging filesystem's free space against the declared `Content-Length` before writing, and a write that
still fails with ENOSPC/EDQUOT says so too. Readiness uses it (`StorageSpace`).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qsl, urlsplit

import httpx

from app.retry import parse_retry_after
from app.storage.base import Storage, StorageError, StoredObject
from app.storage.keys import validate_key
from app.storage.probe import ProbeError, VideoProbe, probe_video_async
from app.telemetry import metrics, tracing

#: Bytes gathered in memory before one write+hash in a worker thread: bounds memory and thread hops.
WRITE_BUFFER_BYTES = 1 << 20
_ERROR_BODY_BYTES = 2048
#: Told how far a copy has got: `(bytes received, bytes declared or None)`, after each buffered write.
OnProgress = Callable[[int, int | None], Awaitable[None]]
#: Errors that mean "the filesystem is full", not "the filesystem is broken".
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class CopyErrorCode(StrEnum):
    """Stable machine codes of copy failures (they end up in `job.error.code`)."""

    VIDEO_URL_EXPIRED = "video_url_expired"  # 403/410, or the URL's expiry has passed: permanent
    VIDEO_NOT_FOUND = "video_not_found"  # 404: permanent
    VIDEO_URL_INVALID = "video_url_invalid"  # not an http(s) URL we can request: permanent
    DOWNLOAD_REJECTED = "download_rejected"  # any other 4xx: permanent
    VIDEO_TOO_LARGE = "video_too_large"  # over max_bytes (declared or streamed): permanent
    VIDEO_UNPLAYABLE = "video_unplayable"  # the bytes are not a playable video: permanent
    DOWNLOAD_FAILED = "download_failed"  # transport error, timeout, 408/429/5xx, truncated body: transient
    STORAGE_FAILED = "storage_failed"  # local disk / store error (full disk, permissions): transient


class CopyError(Exception):
    """A failed copy. `transient` says whether trying again later can help.

    `message` is safe to show clients (no server paths); `detail` (default: the message) is the whole
    story, for the log. `needed_bytes` is set when the staging disk is too full: the bytes the copy needs.
    """

    def __init__(
        self,
        code: str,
        message: str,
        transient: bool,
        *,
        detail: str | None = None,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        needed_bytes: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = str(code)
        self.message = message
        self.detail = detail or message
        self.transient = transient
        #: The upstream HTTP status, when the failure was an HTTP answer.
        self.status_code = status_code
        #: The server's `Retry-After` in seconds (429/503), a hint for the retry schedule.
        self.retry_after_s = retry_after_s
        self.needed_bytes = needed_bytes

    @property
    def out_of_space(self) -> bool:
        return self.needed_bytes is not None

    def __repr__(self) -> str:
        return f"CopyError(code={self.code!r}, message={self.message!r}, transient={self.transient})"


@dataclass(frozen=True)
class CopyResult:
    stored: StoredObject
    probe: VideoProbe


def _permanent(code: CopyErrorCode, message: str, status_code: int | None = None) -> CopyError:
    return CopyError(code, message, False, status_code=status_code)


def _transient(
    code: CopyErrorCode, message: str, status_code: int | None = None, retry_after_s: float | None = None
) -> CopyError:
    return CopyError(code, message, True, status_code=status_code, retry_after_s=retry_after_s)


@dataclass
class _Progress:
    """How far a download got, for the error that stops it."""

    declared: int | None = None
    received: int = 0

    @property
    def size(self) -> int:
        """The bytes the video needs on disk, as far as is known."""
        return max(self.declared or 0, self.received)


def _storage_failed(what: str, exc: OSError | StorageError, progress: _Progress | None = None) -> CopyError:
    """A store or disk failure: `what` failed, told in our words; the exception itself goes in `detail`."""
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        full = exc.errno in OUT_OF_SPACE_ERRNOS
    else:
        reason, full = "the store refused it", False
    return CopyError(
        CopyErrorCode.STORAGE_FAILED,
        f"{what}: {reason}",
        True,
        detail=f"{what}: {type(exc).__name__}: {exc}",
        needed_bytes=(progress.size if progress is not None else 0) if full else None,
    )


def parse_url_expiry(url: str) -> datetime | None:
    """When a signed URL stops working, read from its query string; None if it does not say.

    Understands OSS V1 signatures (`Expires=<epoch seconds>`, what DashScope hands out) and the V4 style of
    OSS and S3 (`x-oss-date`/`X-Amz-Date` `YYYYMMDDTHHMMSSZ` plus `x-oss-expires`/`X-Amz-Expires` seconds).
    """
    try:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return None
    params = {name.lower(): value.strip() for name, value in query}
    expires = params.get("expires")
    if expires is not None:
        try:
            return datetime.fromtimestamp(int(expires), tz=UTC)
        except (ValueError, OverflowError, OSError):
            return None
    for date_name, ttl_name in (("x-oss-date", "x-oss-expires"), ("x-amz-date", "x-amz-expires")):
        if date_name in params and ttl_name in params:
            try:
                signed = datetime.strptime(params[date_name], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                return signed + timedelta(seconds=int(params[ttl_name]))
            except (ValueError, OverflowError):
                return None
    return None


def _declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


async def _error_detail(response: httpx.Response) -> str:
    """A short description of an error answer: OSS puts `<Code>`/`<Message>` in an XML body."""
    body = b""
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= _ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass
    text = body[:_ERROR_BODY_BYTES].decode("utf-8", "replace")
    parts = [
        match.group(1).strip()
        for tag in ("Code", "Message")
        if (match := re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL))
    ]
    detail = f"HTTP {response.status_code}"
    return f"{detail} ({': '.join(parts)})" if parts else detail


async def _check_status(response: httpx.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in (403, 410):
        detail = await _error_detail(response)
        message = f"the video URL is expired or no longer authorized: {detail}"
        raise _permanent(CopyErrorCode.VIDEO_URL_EXPIRED, message, status)
    if status == 404:
        detail = await _error_detail(response)
        raise _permanent(CopyErrorCode.VIDEO_NOT_FOUND, f"the video is gone upstream: {detail}", status)
    if status in (408, 429) or status >= 500:
        detail = await _error_detail(response)
        raise _transient(
            CopyErrorCode.DOWNLOAD_FAILED,
            f"the video host answered {detail}",
            status,
            parse_retry_after(response.headers),
        )
    if 400 <= status < 500:
        detail = await _error_detail(response)
        raise _permanent(CopyErrorCode.DOWNLOAD_REJECTED, f"the video host refused: {detail}", status)
    # An unexpected 2xx/3xx (redirects are followed): nothing to store, but nothing final either.
    raise _transient(CopyErrorCode.DOWNLOAD_FAILED, f"unexpected HTTP {status} from the video host", status)


def _write_and_hash(f: BinaryIO, digest: hashlib._Hash, data: bytearray) -> None:
    # hashlib and file writes release the GIL, so a worker thread keeps the event loop free.
    digest.update(data)
    f.write(data)


def _flush_and_sync(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


def _check_room(staging: Path, declared: int) -> None:
    """Refuse, before writing, a video that cannot fit in the staging filesystem's free space."""
    free = shutil.disk_usage(staging).free
    if declared > free:
        raise CopyError(
            CopyErrorCode.STORAGE_FAILED,
            f"not enough disk space on the gateway for the video ({declared} bytes)",
            True,
            detail=f"the video is {declared} bytes; {free} bytes are free in {staging}",
            needed_bytes=declared,
        )


async def _download(
    client: httpx.AsyncClient,
    url: str,
    f: BinaryIO,
    *,
    max_bytes: int,
    timeout_s: float,
    staging: Path,
    progress: _Progress,
    on_progress: OnProgress | None = None,
) -> tuple[str, int]:
    """Stream `url` into `f`; return (sha256 hex, size). Raises CopyError (and OSError when writing)."""
    digest = hashlib.sha256()
    received = 0
    try:
        async with client.stream(
            "GET",
            url,
            # A video does not compress; identity also keeps Content-Length equal to the bytes we store.
            headers={"Accept-Encoding": "identity"},
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=True,
        ) as response:
            await _check_status(response)
            declared = progress.declared = _declared_length(response)
            if declared is not None and declared > max_bytes:
                raise _permanent(
                    CopyErrorCode.VIDEO_TOO_LARGE,
                    f"the video is {declared} bytes, more than the {max_bytes}-byte limit",
                    response.status_code,
                )
            if declared is not None:
                _check_room(staging, declared)
            buffer = bytearray()
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                progress.received = received
                if received > max_bytes:
                    raise _permanent(
                        CopyErrorCode.VIDEO_TOO_LARGE,
                        f"the video exceeds the {max_bytes}-byte limit",
                        response.status_code,
                    )
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER_BYTES:
                    full, buffer = buffer, bytearray()
                    await asyncio.to_thread(_write_and_hash, f, digest, full)
                    if on_progress is not None:
                        await on_progress(received, declared)
            if buffer:
                await asyncio.to_thread(_write_and_hash, f, digest, buffer)
            if on_progress is not None:
                await on_progress(received, declared)
            # h11 already refuses a body shorter than its Content-Length; this also covers transports
            # that do not (and any Content-Encoding a server applied despite `identity`).
            if declared is not None and response.num_bytes_downloaded != declared:
                raise _transient(
                    CopyErrorCode.DOWNLOAD_FAILED,
                    f"the body is truncated: {response.num_bytes_downloaded} of {declared} bytes",
                    response.status_code,
                )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise _permanent(CopyErrorCode.VIDEO_URL_INVALID, f"cannot request the video URL: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise _transient(
            CopyErrorCode.DOWNLOAD_FAILED,
            f"timed out after {received} bytes ({type(exc).__name__}, limit {timeout_s:g}s)",
        ) from exc
    except httpx.RequestError as exc:
        raise _transient(
            CopyErrorCode.DOWNLOAD_FAILED,
            f"download failed after {received} bytes: {type(exc).__name__}: {exc}",
        ) from exc
    return digest.hexdigest(), received


async def copy_video(
    client: httpx.AsyncClient,
    url: str,
    storage: Storage,
    key: str,
    *,
    max_bytes: int,
    timeout_s: float,
    expires_at: datetime | None = None,
    on_progress: OnProgress | None = None,
) -> CopyResult:
    """Download `url` and publish it under `key`; on success the object is durable, hashed and probed.

    `timeout_s` bounds connecting and each read (a stalled body fails, a slow but moving one does not).
    `expires_at` (tz-aware; see `parse_url_expiry`) short-cuts a URL known to be dead. `on_progress` is
    awaited after every buffered write (each WRITE_BUFFER_BYTES) and once the body is in: it throttles
    itself (the job poller persists it at most about once a second). Raises CopyError;
    a bad `key` or a naive `expires_at` is a programming error (ValueError).
    """
    validate_key(key)
    with tracing.span("wan.storage.copy", key=key):
        return await _copy(client, url, storage, key, max_bytes, timeout_s, expires_at, on_progress)


async def _copy(
    client: httpx.AsyncClient,
    url: str,
    storage: Storage,
    key: str,
    max_bytes: int,
    timeout_s: float,
    expires_at: datetime | None,
    on_progress: OnProgress | None,
) -> CopyResult:
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        if datetime.now(UTC) >= expires_at:
            raise _permanent(
                CopyErrorCode.VIDEO_URL_EXPIRED, f"the video URL expired at {expires_at.isoformat()}"
            )

    try:
        # Not in a thread: a cancellation there would orphan a file whose name we never learnt.
        fd, name = tempfile.mkstemp(prefix="dl-", suffix=".part", dir=storage.staging_dir())
    except OSError as exc:
        raise _storage_failed("cannot create a staging file", exc) from exc
    temp = Path(name)
    published = False
    progress = _Progress()
    started = time.perf_counter()
    try:
        try:
            # Closing waits for an in-flight threaded write (BufferedWriter holds its lock), so a
            # cancelled copy never writes into a recycled file descriptor.
            with os.fdopen(fd, "wb") as f:
                sha256, size = await _download(
                    client,
                    url,
                    f,
                    max_bytes=max_bytes,
                    timeout_s=timeout_s,
                    staging=temp.parent,
                    progress=progress,
                    on_progress=on_progress,
                )
                await asyncio.to_thread(_flush_and_sync, f)
        except OSError as exc:
            raise _storage_failed("cannot write the staging file", exc, progress) from exc

        try:
            probe = await probe_video_async(temp)
        except ProbeError as exc:
            raise _permanent(
                CopyErrorCode.VIDEO_UNPLAYABLE, f"the downloaded file ({size} bytes) is not playable: {exc}"
            ) from exc
        except OSError as exc:
            raise _storage_failed("cannot read the staging file", exc, progress) from exc

        try:
            stored = await storage.put_file(key, temp, sha256=sha256, content_type=probe.content_type)
        except (OSError, StorageError) as exc:
            raise _storage_failed("cannot publish the video", exc, progress) from exc
        published = True
        # Counted here, where the bytes landed: a job that then fails to record them stored them still.
        metrics.STORED_BYTES.inc(stored.size_bytes)
        metrics.COPY_THROUGHPUT.observe(stored.size_bytes / max(time.perf_counter() - started, 1e-6))
        return CopyResult(stored=stored, probe=probe)
    finally:
        if not published:
            # Synchronous on purpose: this also runs on cancellation, where awaiting is unreliable.
            temp.unlink(missing_ok=True)  # noqa: ASYNC240
