"""LocalStorage: atomic publish by rename, key validation, stat/delete/local_path, readiness, sweeping."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import tempfile
import time
from pathlib import Path

import pytest

from app.storage.base import Storage, StorageError
from app.storage.keys import validate_key
from app.storage.local import XATTR_NAME, LocalStorage

from .support import stored_files

BAD_KEYS = [
    "",
    "../escape.mp4",
    "a/../../b.mp4",
    "a/./b.mp4",
    "/etc/passwd",
    "a\\b.mp4",
    "..\\escape.mp4",
    "a//b.mp4",
    "dir/",
    ".staging/x.mp4",
    ".hidden.mp4",
    "a\x00b.mp4",
    "a\nb.mp4",
    "x" * 513,
]


def _staged(storage: LocalStorage, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=storage.staging_dir(), suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def test_local_storage_satisfies_the_protocol(storage: LocalStorage) -> None:
    as_protocol: Storage = storage
    assert as_protocol.url == str(storage.root)
    assert storage.staging_dir() == storage.root / ".staging"


async def test_put_file_publishes_by_rename(storage: LocalStorage) -> None:
    data = b"video bytes" * 1000
    staged = _staged(storage, data)
    inode = staged.stat().st_ino
    digest = hashlib.sha256(data).hexdigest()

    stored = await storage.put_file("job.mp4", staged, sha256=digest, content_type="video/mp4")

    published = storage.root / "job.mp4"
    assert published.stat().st_ino == inode  # the same file, renamed: never a partial copy
    assert not staged.exists()
    assert published.read_bytes() == data
    assert stat.S_IMODE(published.stat().st_mode) == 0o644
    assert (stored.key, stored.size_bytes, stored.sha256, stored.content_type) == (
        "job.mp4",
        len(data),
        digest,
        "video/mp4",
    )
    assert await storage.stat("job.mp4") == stored
    assert storage.local_path("job.mp4") == published


async def test_put_file_creates_nested_directories(storage: LocalStorage) -> None:
    staged = _staged(storage, b"abc")

    await storage.put_file("2025/06/job.mp4", staged, sha256="0" * 64, content_type="video/mp4")

    assert (storage.root / "2025/06/job.mp4").read_bytes() == b"abc"
    assert stored_files(storage) == ["2025/06/job.mp4"]


def _file_on_another_filesystem(storage: LocalStorage, data: bytes) -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no second filesystem at /dev/shm")
    if shm.stat().st_dev == storage.staging_dir().stat().st_dev:
        pytest.skip("/dev/shm is on the same filesystem as tmp")
    fd, name = tempfile.mkstemp(dir=shm)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


async def test_put_file_from_another_filesystem(storage: LocalStorage) -> None:
    source = _file_on_another_filesystem(storage, b"elsewhere")

    stored = await storage.put_file("job.mp4", source, sha256="1" * 64, content_type="video/mp4")

    assert not await asyncio.to_thread(source.exists)
    assert (storage.root / "job.mp4").read_bytes() == b"elsewhere"
    assert stored.size_bytes == len(b"elsewhere")
    assert stored_files(storage) == ["job.mp4"]


async def test_failed_publish_leaves_nothing(storage: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    staged = _staged(storage, b"abc")

    def broken(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk on fire"):
        await storage.put_file("job.mp4", staged, sha256="0" * 64, content_type="video/mp4")

    assert stored_files(storage) == []


async def test_stat_missing_is_none_and_delete_missing_is_fine(storage: LocalStorage) -> None:
    assert await storage.stat("nope.mp4") is None
    assert storage.local_path("nope.mp4") is None
    await storage.delete("nope.mp4")
    await storage.delete("nested/nope.mp4")


async def test_delete_removes_the_object(storage: LocalStorage) -> None:
    await storage.put_file("job.mp4", _staged(storage, b"abc"), sha256="0" * 64, content_type="video/mp4")

    await storage.delete("job.mp4")

    assert await storage.stat("job.mp4") is None
    assert stored_files(storage) == []


async def test_stat_computes_sha256_when_the_file_carries_none(storage: LocalStorage) -> None:
    storage.root.mkdir(parents=True)
    (storage.root / "manual.mp4").write_bytes(b"placed by hand")

    stored = await storage.stat("manual.mp4")

    assert stored is not None
    assert stored.sha256 == hashlib.sha256(b"placed by hand").hexdigest()
    assert stored.size_bytes == len(b"placed by hand")


async def test_stat_recomputes_when_the_file_changed_behind_its_metadata(storage: LocalStorage) -> None:
    await storage.put_file("job.mp4", _staged(storage, b"abc"), sha256="f" * 64, content_type="video/mp4")
    with (storage.root / "job.mp4").open("ab") as f:
        f.write(b"def")

    stored = await storage.stat("job.mp4")

    assert stored is not None
    assert stored.sha256 == hashlib.sha256(b"abcdef").hexdigest()


async def test_sha256_travels_with_the_file(storage: LocalStorage) -> None:
    await storage.put_file("job.mp4", _staged(storage, b"abc"), sha256="e" * 64, content_type="video/webm")

    stored = await storage.stat("job.mp4")

    # The recorded digest is returned without rehashing (it differs from the real one on purpose).
    assert stored is not None
    assert (stored.sha256, stored.content_type) == ("e" * 64, "video/webm")
    assert XATTR_NAME.encode() in b"".join(n.encode() for n in os.listxattr(storage.root / "job.mp4"))


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_refused_everywhere(storage: LocalStorage, key: str) -> None:
    staged = _staged(storage, b"abc")

    with pytest.raises(ValueError, match="storage key"):
        await storage.put_file(key, staged, sha256="0" * 64, content_type="video/mp4")
    with pytest.raises(ValueError, match="storage key"):
        await storage.stat(key)
    with pytest.raises(ValueError, match="storage key"):
        await storage.delete(key)
    with pytest.raises(ValueError, match="storage key"):
        storage.local_path(key)

    assert staged.exists()  # refused before anything was touched
    assert not (storage.root.parent / "escape.mp4").exists()


@pytest.mark.parametrize("key", ["job_abc.mp4", "2025/06/01/job.mp4", "a-b_c.d.mp4", "视频.mp4"])
def test_good_keys_pass(key: str) -> None:
    assert validate_key(key) == key


async def test_check_passes_and_leaves_nothing(storage: LocalStorage) -> None:
    await storage.check()

    assert stored_files(storage) == []


async def test_check_fails_when_the_root_is_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_bytes(b"")

    with pytest.raises(StorageError, match="not writable"):
        await LocalStorage(blocker).check()


def test_sweep_staging_removes_only_stale_files(storage: LocalStorage) -> None:
    stale = _staged(storage, b"crashed")
    fresh = _staged(storage, b"in progress")
    old = time.time() - 7200
    os.utime(stale, (old, old))

    assert storage.sweep_staging(older_than_s=3600) == 1

    assert not stale.exists()
    assert fresh.exists()


def test_sweep_staging_without_staging_dir(tmp_path: Path) -> None:
    assert LocalStorage(tmp_path / "never-used").sweep_staging() == 0


async def test_publish_under_a_file_fails_and_cleans_staging(storage: LocalStorage) -> None:
    await storage.put_file("a", _staged(storage, b"plain object"), sha256="0" * 64, content_type="video/mp4")

    with pytest.raises((FileExistsError, NotADirectoryError)):
        await storage.put_file("a/b.mp4", _staged(storage, b"abc"), sha256="0" * 64, content_type="video/mp4")

    assert stored_files(storage) == ["a"]


async def test_open_range_streams_a_slice_of_the_file(storage: LocalStorage) -> None:
    data = os.urandom(200_000)  # several read chunks
    await storage.put_file("job.mp4", _staged(storage, data), sha256="0" * 64, content_type="video/mp4")

    for start, stop in [(0, len(data)), (70_000, 140_001), (len(data) - 1, len(data))]:
        stream = await storage.open_range("job.mp4", start, stop)
        assert stream is not None and stream.length == stop - start
        assert b"".join([chunk async for chunk in stream]) == data[start:stop]

    unread = await storage.open_range("job.mp4", 0, 10)
    assert unread is not None
    await unread.aclose()
    assert await storage.open_range("missing.mp4", 0, 10) is None
    # Files are served by the gateway itself: there is no URL to send a client to.
    assert await storage.redirect_url("job.mp4", filename="job.mp4", content_type="video/mp4") is None
