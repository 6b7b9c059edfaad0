"""open_storage / build_storage: STORAGE_URL values to stores (local directories and S3 buckets)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.storage.factory import StorageConfigError, build_storage, open_storage, storage_from_url
from app.storage.local import LocalStorage
from app.storage.s3 import S3Storage
from tests.helpers import wait_for
from tests.s3 import Bucket


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


async def test_open_storage_gives_local_storage_for_a_path(tmp_path: Path) -> None:
    async with open_storage(_settings(output_dir=tmp_path, storage_url=str(tmp_path / "v"))) as storage:
        assert isinstance(storage, LocalStorage)
        assert storage.root == tmp_path / "v"


async def test_s3_url_opens_s3_storage_and_sweeps_leftover_uploads(tmp_path: Path, s3_bucket: Bucket) -> None:
    leftover = "videos/crashed.mp4"
    await s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key=leftover)
    settings = Settings(
        _env_file=None,
        output_dir=tmp_path,
        storage_url=f"s3://{s3_bucket.name}/videos",
        s3_endpoint_url=s3_bucket.endpoint_url,
    )

    async with open_storage(settings) as storage:
        assert isinstance(storage, S3Storage)
        assert storage.url == f"s3://{s3_bucket.name}/videos/"
        assert storage.staging_dir() == tmp_path / "s3-staging"
        await storage.check()

        # moto dates every upload 2010, so the sweep (uploads older than a day) takes this one at startup.
        async def swept() -> bool:
            return await s3_bucket.pending_uploads() == []

        await wait_for(swept, within=30, what="the leftover upload to be aborted")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "not a valid bucket name"),
        ("s3://ab/x", "not a valid bucket name"),
        ("s3://Bucket/x", "not a valid bucket name"),
        ("s3://key:secret@bucket/x", "credentials come from the AWS_"),
        ("s3://bucket:9000/x", "S3_ENDPOINT_URL"),
        ("s3://bucket/a/../b", "'..'"),
        ("s3://bucket/x?region=eu", "no query"),
    ],
)
async def test_unusable_s3_urls_are_refused_at_startup(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(StorageConfigError, match=message) as info:
        async with open_storage(_settings(output_dir=tmp_path, storage_url=url)):
            pass
    assert url in str(info.value)


def test_storage_from_url_points_s3_at_open_storage() -> None:
    with pytest.raises(StorageConfigError, match="open_storage"):
        storage_from_url("s3://bucket/prefix")


@pytest.mark.parametrize("url", ["http://example.com/videos", "file://otherhost/videos", "  "])
def test_unusable_urls(url: str) -> None:
    with pytest.raises(StorageConfigError):
        storage_from_url(url)


def test_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"")

    with pytest.raises(StorageConfigError, match="cannot create directory"):
        storage_from_url(str(target))
