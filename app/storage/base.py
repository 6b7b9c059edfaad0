"""The Storage seam: where finished videos are kept (local directory now, S3 later) and how they are read.

A video is first streamed into a local staging file (hashed on the way, size-capped), probed, and only then
published under its key with `put_file`, which is atomic: a reader sees the whole object or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """The store cannot do what was asked (not writable, unreachable). Raised by `check()`."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str
    content_type: str = "video/mp4"


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

    async def check(self) -> None:
        """Raise if the store cannot be written (readiness)."""
        ...
