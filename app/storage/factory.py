"""build_storage: turn the STORAGE_URL setting into a Storage implementation.

A plain path or `file://` URL gives `LocalStorage` (the directory is created if missing, and staging files
left by a crashed process are swept). `s3://bucket/prefix` is reserved for the S3 store, which arrives with
the scale-out work; until then it is refused at startup rather than failing on the first finished job.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.config import Settings
from app.storage.base import Storage
from app.storage.local import LocalStorage


class StorageConfigError(ValueError):
    """STORAGE_URL cannot be used."""


class StorageNotSupportedError(StorageConfigError, NotImplementedError):
    """STORAGE_URL names a kind of store this build does not have yet."""


def build_storage(settings: Settings) -> Storage:
    return storage_from_url(settings.resolved_storage_url)


def storage_from_url(url: str) -> Storage:
    """Build the store for a STORAGE_URL value (see `Settings.storage_url`)."""
    text = url.strip()
    if not text:
        raise StorageConfigError("STORAGE_URL is empty")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        raise StorageNotSupportedError(
            f"STORAGE_URL={text!r}: S3 storage is not available yet (it arrives with the scale-out work); "
            "use a local directory or a file:// URL for now"
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
