"""build_storage: STORAGE_URL values to stores, and the clear refusal of S3 for now."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.storage.factory import StorageConfigError, StorageNotSupportedError, build_storage, storage_from_url
from app.storage.local import LocalStorage


def _settings(*, output_dir: Path, storage_url: str | None = None) -> Settings:
    return Settings(_env_file=None, output_dir=output_dir, storage_url=storage_url)


def test_default_is_a_local_directory_under_output_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORAGE_URL", raising=False)

    storage = build_storage(_settings(output_dir=tmp_path / "out"))

    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "out" / "ai-video-wan-video" / "videos"
    assert storage.root.is_dir()


def test_plain_path(tmp_path: Path) -> None:
    storage = build_storage(_settings(output_dir=tmp_path, storage_url=str(tmp_path / "a" / "b")))

    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "a" / "b"
    assert storage.root.is_dir()


def test_relative_path_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    storage = storage_from_url("videos")

    assert storage.url == str(tmp_path / "videos")


def test_file_url(tmp_path: Path) -> None:
    storage = storage_from_url((tmp_path / "with space").as_uri())

    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "with space"
    assert storage.root.is_dir()


def test_stale_staging_files_are_swept_at_startup(tmp_path: Path) -> None:
    staging = tmp_path / "v" / ".staging"
    staging.mkdir(parents=True)
    stale = staging / "dl-crashed.part"
    stale.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))

    storage_from_url(str(tmp_path / "v"))

    assert not stale.exists()


def test_s3_is_refused_clearly() -> None:
    with pytest.raises(StorageNotSupportedError, match="S3 storage is not available yet") as info:
        storage_from_url("s3://bucket/prefix")

    assert isinstance(info.value, NotImplementedError)
    assert isinstance(info.value, StorageConfigError)


@pytest.mark.parametrize("url", ["http://example.com/videos", "file://otherhost/videos", "  "])
def test_unusable_urls(url: str) -> None:
    with pytest.raises(StorageConfigError):
        storage_from_url(url)


def test_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"")

    with pytest.raises(StorageConfigError, match="cannot create directory"):
        storage_from_url(str(target))
