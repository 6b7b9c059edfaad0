"""open_storage / build_storage: turn the STORAGE_URL setting into a Storage implementation.

A plain path or `file://` URL gives `LocalStorage` (the directory is created if missing, and staging files
left by a crashed process are swept). `s3://bucket/prefix` gives `S3Storage`, which holds a network client:
it is opened and closed by `open_storage`, the one entry point the lifespan uses, which also aborts multipart
uploads a killed process left behind (in the background: startup never waits on S3, whose health is
readiness's business). A STORAGE_URL that cannot work (a bad path, an invalid bucket name) is refused at
startup rather than on the first finished job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from app.config import Settings
from app.storage.base import Storage
from app.storage.local import LocalStorage

if TYPE_CHECKING:
    from app.storage.s3 import S3Location


class StorageConfigError(ValueError):
    """STORAGE_URL cannot be used."""


@contextlib.asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    """The store STORAGE_URL names, open for the duration of the block (for S3: its client)."""
    url = settings.resolved_storage_url
    location = s3_location(url)
    if location is None:
        yield storage_from_url(url)
        return
    # Imported here: aiobotocore takes ~0.6 s to import, which every process not using S3 (each worker,
    # each CLI command) would pay at startup.
    from app.storage.s3 import open_s3_storage

    async with open_s3_storage(settings, location) as storage:
        sweeper = asyncio.create_task(storage.sweep_uploads(), name="s3 upload sweep")
        try:
            yield storage
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)


def s3_location(url: str) -> S3Location | None:
    """The bucket and prefix of an `s3://` STORAGE_URL; None for any other kind of URL."""
    text = url.strip()
    if urlsplit(text).scheme.lower() != "s3":
        return None
    from app.storage.s3 import parse_s3_url  # only for an s3:// URL (see open_storage)

    try:
        return parse_s3_url(text)
    except ValueError as exc:
        raise StorageConfigError(f"STORAGE_URL={text!r}: {exc}") from exc


def build_storage(settings: Settings) -> Storage:
    """The local store STORAGE_URL names (S3 needs `open_storage`, which owns its client)."""
    return storage_from_url(settings.resolved_storage_url)


def storage_from_url(url: str) -> Storage:
    """Build the local store for a STORAGE_URL value (see `Settings.storage_url`)."""
    text = url.strip()
    if not text:
        raise StorageConfigError("STORAGE_URL is empty")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        s3_location(text)  # a malformed s3:// URL says what is wrong with it
        raise StorageConfigError(
            f"STORAGE_URL={text!r}: S3 storage holds a client that must be closed; "
            "open it with open_storage()"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageConfigError(f"STORAGE_URL={text!r}: a file:// URL must not name a remote host")
        if parts.query or parts.fragment:
            raise StorageConfigError(f"STORAGE_URL={text!r}: a file:// URL takes no query or fragment")
        root = Path(unquote(parts.path))
    elif "://" in text:
        raise StorageConfigError(
            f"STORAGE_URL={text!r}: unsupported scheme {scheme!r}; use a directory, file:// or s3://"
        )
    else:
        root = Path(text)
    return _local(root, text)


def _local(root: Path, url: str) -> LocalStorage:
    root = root.expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageConfigError(f"STORAGE_URL={url!r}: cannot create directory {root}: {exc}") from exc
    if not root.is_dir():
        raise StorageConfigError(f"STORAGE_URL={url!r}: {root} is not a directory")
    storage = LocalStorage(root)
    storage.sweep_staging()
    return storage
