"""LocalStorage: finished videos as files under one root directory.

Layout: objects at `root/<key>`, partial downloads in `root/.staging/` (same filesystem, so publishing is a
single `os.replace`). A published file is fsynced before the rename and its directory after it, so after a
crash a key is either absent or complete. The sha256 given at publish time is kept in an extended attribute
on the file (it travels with the inode through the rename); where the filesystem has no user xattrs,
`stat()` recomputes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from app.storage.base import ObjectStream, StorageError, StoredObject
from app.storage.keys import validate_key

STAGING_DIRNAME = ".staging"
#: One JSON attribute `{"sha256", "size", "content_type"}`; `size` lets `stat()` notice a file that was
#: rewritten in place behind our back (the attribute would then be stale).
XATTR_NAME = "user.wan_gateway.meta"
DEFAULT_CONTENT_TYPE = "video/mp4"
_HASH_CHUNK = 1 << 20
#: Bytes per read when streaming a range out of a file.
_READ_CHUNK = 1 << 16
_XATTR_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.ENODATA, errno.E2BIG}


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems (certain network and FUSE mounts) refuse fsync on a directory; there is
        # nothing stronger to do there, and the file itself was already fsynced.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def sweep_stale_files(directory: Path, *, older_than_s: float) -> int:
    """Remove files in `directory` untouched for `older_than_s` (left by a crashed process); return how many.

    Younger files stay: a live download writes at least once per read timeout, and another process (API and
    worker may share the directory) may be mid-download right now.
    """
    if not directory.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for entry in directory.iterdir():
        try:
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LocalStorage:
    """A directory on local disk, implementing the `Storage` Protocol."""

    def __init__(self, root: Path) -> None:
        self._root = root.expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self._root)!r})"

    @property
    def root(self) -> Path:
        return self._root

    @property
    def url(self) -> str:
        return str(self._root)

    def staging_dir(self) -> Path:
        staging = self._root / STAGING_DIRNAME
        # Cheap when it exists; recreating it lets the store heal if someone cleaned the directory.
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    def _path(self, key: str) -> Path:
        return self._root / validate_key(key)

    async def put_file(self, key: str, path: Path, *, sha256: str, content_type: str) -> StoredObject:
        dest = self._path(key)
        size = await asyncio.to_thread(self._publish, Path(path), dest, sha256, content_type)
        return StoredObject(key=key, size_bytes=size, sha256=sha256, content_type=content_type)

    def _publish(self, src: Path, dest: Path, sha256: str, content_type: str) -> int:
        staging = self.staging_dir()
        original = src
        try:
            created = self._make_parents(dest.parent)
            if src.stat().st_dev != staging.stat().st_dev:
                # A rename cannot cross filesystems: copy into staging first, so publishing is still
                # one rename and a reader never sees a file that is being copied.
                src = self._copy_into(staging, src)
            with src.open("rb") as f:
                fileno = f.fileno()
                # mkstemp creates 0600 files; published videos should be readable by e.g. a static server.
                os.fchmod(fileno, 0o644)
                size = os.fstat(fileno).st_size
                meta = {"sha256": sha256, "size": size, "content_type": content_type}
                with contextlib.suppress(OSError):
                    os.setxattr(fileno, XATTR_NAME, json.dumps(meta).encode())
                os.fsync(fileno)
            os.replace(src, dest)
        except BaseException:
            # `path` is consumed either way: a failed publish must not leave a partial file in staging.
            if src.parent == staging:
                src.unlink(missing_ok=True)
            raise
        if original != src:
            original.unlink(missing_ok=True)
        fsync_dir(dest.parent)
        if src.parent != dest.parent:
            fsync_dir(src.parent)
        for directory in created:
            fsync_dir(directory.parent)
        return size

    @staticmethod
    def _copy_into(staging: Path, src: Path) -> Path:
        fd, name = tempfile.mkstemp(prefix="put-", suffix=".part", dir=staging)
        os.close(fd)
        local = Path(name)
        try:
            shutil.copyfile(src, local)
        except BaseException:
            local.unlink(missing_ok=True)
            raise
        return local

    def _make_parents(self, directory: Path) -> list[Path]:
        """Create the key's parent directories; return the ones that were new (their parents need fsync)."""
        missing: list[Path] = []
        current = directory
        while current != self._root and not current.exists():
            missing.append(current)
            current = current.parent
        directory.mkdir(parents=True, exist_ok=True)
        return missing

    async def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        return await asyncio.to_thread(self._stat, key, path)

    def _stat(self, key: str, path: Path) -> StoredObject | None:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        meta = self._read_meta(path)
        if meta is not None and meta.get("size") == st.st_size and isinstance(meta.get("sha256"), str):
            content_type = meta.get("content_type")
            return StoredObject(
                key=key,
                size_bytes=st.st_size,
                sha256=str(meta["sha256"]),
                content_type=content_type if isinstance(content_type, str) else DEFAULT_CONTENT_TYPE,
            )
        return StoredObject(key=key, size_bytes=st.st_size, sha256=_sha256_file(path))

    @staticmethod
    def _read_meta(path: Path) -> dict[str, object] | None:
        try:
            raw = os.getxattr(path, XATTR_NAME)
        except OSError as exc:
            if exc.errno in _XATTR_UNSUPPORTED:
                return None
            raise
        try:
            meta = json.loads(raw)
        except ValueError:
            return None
        return meta if isinstance(meta, dict) else None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    async def redirect_url(self, key: str, *, filename: str, content_type: str) -> str | None:
        return None  # files are served by the gateway itself

    async def open_range(self, key: str, start: int, stop: int) -> ObjectStream | None:
        path = self._path(key)
        try:
            f = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            await asyncio.to_thread(f.seek, start)
        except BaseException:
            f.close()
            raise

        async def close() -> None:
            # Not in a thread: this also runs when a client hangs up, inside a cancelled scope where an
            # await would be cut short and leave the file open.
            f.close()

        return ObjectStream(stop - start, _read_file(f, stop - start), close)

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._check)
        except OSError as exc:
            raise StorageError(f"local storage {self.url} is not writable: {exc}") from exc

    def _check(self) -> None:
        """Exercise the real publish path: write into staging, rename into the root, remove."""
        staging = self.staging_dir()
        fd, name = tempfile.mkstemp(prefix="check-", suffix=".part", dir=staging)
        probe = Path(name)
        target = self._root / f".probe-{uuid.uuid4().hex}"
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"ok")
                f.flush()
                os.fsync(f.fileno())
            os.replace(probe, target)
        finally:
            probe.unlink(missing_ok=True)
            target.unlink(missing_ok=True)

    def sweep_staging(self, *, older_than_s: float = 3600.0) -> int:
        """Remove staging files left by a crashed process; return how many were removed."""
        return sweep_stale_files(self._root / STAGING_DIRNAME, older_than_s=older_than_s)


async def _read_file(f: BinaryIO, length: int) -> AsyncIterator[bytes]:
    """`length` bytes from the current position of `f`, read in a worker thread chunk by chunk."""
    remaining = length
    while remaining > 0:
        chunk = await asyncio.to_thread(f.read, min(_READ_CHUNK, remaining))
        if not chunk:
            raise StorageError(f"the file ended {remaining} bytes early")
        remaining -= len(chunk)
        yield chunk
