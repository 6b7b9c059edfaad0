"""The Storage seam: where finished videos are kept (a local directory or an S3 bucket) and how they are read.

A video is first streamed into a local staging file (hashed on the way, size-capped), probed, and only then
published under its key with `put_file`, which is atomic: a reader sees the whole object or nothing.
Serving reads through `local_path` (zero-copy file serving), `redirect_url` (the client fetches from the
store itself) or `open_range` (the gateway streams the bytes), in that order of preference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """The store cannot do what was asked (not writable, unreachable): from `check()`, and from S3 calls."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str
    content_type: str = "video/mp4"


class ObjectStream:
    """An open read of some bytes of a stored object, `length` of them, yielded in chunks.

    Iterate it once; the file or connection behind it is released when the iteration ends, fails, or is
    abandoned and `aclose()` is called (the caller must call it if it may not iterate to the end).
    """

    def __init__(
        self, length: int, chunks: AsyncIterator[bytes], close: Callable[[], Awaitable[None]]
    ) -> None:
        self.length = length
        self._chunks = chunks
        self._close = close
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._close()


class Storage(Protocol):
    """Where finished videos live. Keys are relative paths like `job_abc.mp4`."""

    @property
    def url(self) -> str:
        """Where this storage points (a directory or `s3://bucket/prefix`), for logs and readiness."""
        ...

    def staging_dir(self) -> Path:
        """A local directory for partial downloads (for local storage: on the same filesystem as the
        objects, so publishing is a rename)."""
        ...

    async def put_file(self, key: str, path: Path, *, sha256: str, content_type: str) -> StoredObject:
        """Publish the finished local file `path` under `key`, atomically. `path` is consumed."""
        ...

    async def stat(self, key: str) -> StoredObject | None:
        """The stored object's size (and sha256 when the store keeps it), or None."""
        ...

    async def delete(self, key: str) -> None: ...

    def local_path(self, key: str) -> Path | None:
        """A local file that holds the object, when the store is local (for zero-copy serving)."""
        ...

    async def redirect_url(self, key: str, *, filename: str, content_type: str) -> str | None:
        """A short-lived URL the client may GET the object from directly, when the store is set up to hand
        those out (S3 with `S3_CONTENT_MODE=redirect`); None when the gateway should serve the bytes."""
        ...

    async def open_range(self, key: str, start: int, stop: int) -> ObjectStream | None:
        """Open bytes `[start, stop)` of the object for streaming (the caller has checked the range against
        the object's size); None if the object is missing. Raises StorageError when the store fails."""
        ...

    async def check(self) -> None:
        """Raise if the store cannot be written (readiness)."""
        ...
