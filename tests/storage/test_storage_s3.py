"""S3Storage against a real S3 API (moto on 127.0.0.1): publish, stat, delete, ranged reads, presigned URLs,
multipart uploads that round-trip, failures and cancellations that leave nothing behind, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.storage.base import StorageError
from app.storage.s3 import MIN_PART_SIZE, S3Storage, open_s3_storage, parse_s3_url
from app.tls import client_context
from tests.s3 import Bucket, run_faulty_s3

from .support import Clip

PREFIX = "videos/2025"


def _settings(tmp_path: Path, bucket: str, endpoint_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "output_dir": tmp_path / "out",
        "storage_url": f"s3://{bucket}/{PREFIX}",
        "s3_endpoint_url": endpoint_url,
        "s3_part_size_bytes": MIN_PART_SIZE,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def _open(tmp_path: Path, bucket: str, endpoint_url: str, **overrides: Any) -> AsyncIterator[S3Storage]:
    settings = _settings(tmp_path, bucket, endpoint_url, **overrides)
    async with open_s3_storage(settings, parse_s3_url(settings.resolved_storage_url)) as storage:
        yield storage


@pytest.fixture
async def s3(tmp_path: Path, s3_bucket: Bucket) -> AsyncIterator[S3Storage]:
    async with _open(tmp_path, s3_bucket.name, s3_bucket.endpoint_url) as storage:
        yield storage


def _staged(storage: S3Storage, data: bytes) -> Path:
    """A finished download in the staging directory, as copy_video leaves it for put_file."""
    path = storage.staging_dir() / f"dl-{hashlib.sha256(data).hexdigest()[:12]}.part"
    path.write_bytes(data)
    return path


def _multipart_payload(parts: float) -> bytes:
    # Random bytes: a pattern could hide a part sent twice or out of order.
    return os.urandom(int(MIN_PART_SIZE * parts))


async def test_publish_stat_and_delete(s3: S3Storage, s3_bucket: Bucket, av_clip: Clip) -> None:
    staged = _staged(s3, av_clip.data)

    stored = await s3.put_file("job_a.mp4", staged, sha256=av_clip.sha256, content_type="video/mp4")

    assert (stored.key, stored.size_bytes, stored.sha256) == ("job_a.mp4", len(av_clip.data), av_clip.sha256)
    assert not staged.exists()  # consumed
    assert await s3_bucket.keys() == [f"{PREFIX}/job_a.mp4"]
    assert await s3_bucket.read(f"{PREFIX}/job_a.mp4") == av_clip.data
    head = await s3_bucket.head(f"{PREFIX}/job_a.mp4")
    assert head["Metadata"]["sha256"] == av_clip.sha256
    assert head["ContentType"] == "video/mp4"
    assert "-" not in head["ETag"]  # one PutObject: a file smaller than a part is not split

    assert await s3.stat("job_a.mp4") == stored
    assert s3.local_path("job_a.mp4") is None

    await s3.delete("job_a.mp4")
    assert await s3.stat("job_a.mp4") is None
    assert await s3_bucket.keys() == []
    await s3.delete("job_a.mp4")  # deleting what is gone is fine


async def test_multipart_upload_round_trips_bytes_and_sha256(s3: S3Storage, s3_bucket: Bucket) -> None:
    data = _multipart_payload(2.5)  # two full 5 MiB parts and a half one
    sha256 = hashlib.sha256(data).hexdigest()

    stored = await s3.put_file("big.mp4", _staged(s3, data), sha256=sha256, content_type="video/mp4")

    assert stored.size_bytes == len(data)
    head = await s3_bucket.head(f"{PREFIX}/big.mp4")
    assert head["ETag"].endswith('-3"')  # S3 names a multipart object's ETag after its part count
    assert head["Metadata"]["sha256"] == sha256
    assert hashlib.sha256(await s3_bucket.read(f"{PREFIX}/big.mp4")).hexdigest() == sha256
    assert await s3.stat("big.mp4") == stored
    assert await s3_bucket.pending_uploads() == []


async def test_s3_failing_midway_leaves_no_object_and_no_pending_upload(
    tmp_path: Path, s3_bucket: Bucket
) -> None:
    data = _multipart_payload(2.5)
    async with run_faulty_s3(s3_bucket.endpoint_url) as (proxy_url, faults):
        faults.fail_part = 2  # the first part is stored, the second one fails
        async with _open(tmp_path, s3_bucket.name, proxy_url) as s3:
            staged = _staged(s3, data)
            with pytest.raises(StorageError, match="InternalError") as info:
                await s3.put_file(
                    "big.mp4", staged, sha256=hashlib.sha256(data).hexdigest(), content_type="video/mp4"
                )
            assert "big.mp4" in str(info.value) and s3_bucket.name in str(info.value)
            assert faults.failed == 1
            assert not staged.exists()

    assert await s3_bucket.keys() == []
    assert await s3_bucket.pending_uploads() == []  # aborted: its first part is gone too


async def test_cancelled_upload_is_aborted(tmp_path: Path, s3_bucket: Bucket) -> None:
    """A copy cancelled mid-upload (lease lost, shutdown) takes its parts with it."""
    data = _multipart_payload(2.5)
    async with run_faulty_s3(s3_bucket.endpoint_url) as (proxy_url, faults):
        faults.hold_part = 2
        async with _open(tmp_path, s3_bucket.name, proxy_url) as s3:
            staged = _staged(s3, data)
            upload = asyncio.create_task(
                s3.put_file(
                    "big.mp4", staged, sha256=hashlib.sha256(data).hexdigest(), content_type="video/mp4"
                )
            )
            await asyncio.wait_for(faults.held.wait(), timeout=30)
            assert await s3_bucket.pending_uploads() == [f"{PREFIX}/big.mp4"]

            upload.cancel()
            with pytest.raises(asyncio.CancelledError):
                await upload

            assert not staged.exists()
            assert await s3_bucket.pending_uploads() == []
            assert await s3_bucket.keys() == []


@pytest.mark.parametrize("parts", [0.5, 2.5], ids=["single-put", "multipart"])
async def test_a_staged_file_that_does_not_match_its_sha256_is_not_published(
    s3: S3Storage, s3_bucket: Bucket, parts: float
) -> None:
    data = _multipart_payload(parts)
    staged = _staged(s3, data)

    with pytest.raises(StorageError, match="changed"):
        await s3.put_file("big.mp4", staged, sha256="0" * 64, content_type="video/mp4")

    assert not staged.exists()
    assert await s3_bucket.keys() == []
    assert await s3_bucket.pending_uploads() == []


async def test_open_range_streams_the_requested_bytes(s3: S3Storage, av_clip: Clip) -> None:
    await s3.put_file("a.mp4", _staged(s3, av_clip.data), sha256=av_clip.sha256, content_type="video/mp4")
    size = len(av_clip.data)

    for start, stop in [(0, size), (100, 200), (size - 50, size)]:
        stream = await s3.open_range("a.mp4", start, stop)
        assert stream is not None and stream.length == stop - start
        assert b"".join([chunk async for chunk in stream]) == av_clip.data[start:stop]

    abandoned = await s3.open_range("a.mp4", 0, size)
    assert abandoned is not None
    await abandoned.aclose()  # released without reading
    assert await s3.open_range("missing.mp4", 0, 10) is None


async def test_redirect_url_is_a_working_presigned_get(
    tmp_path: Path, s3_bucket: Bucket, av_clip: Clip
) -> None:
    async with _open(tmp_path, s3_bucket.name, s3_bucket.endpoint_url, s3_content_mode="redirect") as s3:
        await s3.put_file("a.mp4", _staged(s3, av_clip.data), sha256=av_clip.sha256, content_type="video/mp4")

        url = await s3.redirect_url("a.mp4", filename="job_a.mp4", content_type="video/mp4")

    assert url is not None and url.startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/{PREFIX}/a.mp4?")
    assert "X-Amz-Expires=300" in url and "X-Amz-Signature=" in url
    async with httpx.AsyncClient(trust_env=False, verify=client_context(trust_env=False)) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == av_clip.data
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["content-disposition"] == "inline; filename*=utf-8''job_a.mp4"


async def test_proxy_mode_hands_out_no_urls(s3: S3Storage) -> None:
    assert await s3.redirect_url("a.mp4", filename="a.mp4", content_type="video/mp4") is None


async def test_stat_hashes_an_object_stored_without_its_sha256(s3: S3Storage, s3_bucket: Bucket) -> None:
    data = b"written by another tool"
    await s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=f"{PREFIX}/other.mp4", Body=data)

    stored = await s3.stat("other.mp4")

    assert stored is not None
    assert (stored.size_bytes, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())


async def test_check_writes_and_removes_a_probe(s3: S3Storage, s3_bucket: Bucket) -> None:
    await s3.check()
    assert await s3_bucket.keys() == []


async def test_check_names_a_missing_bucket(tmp_path: Path, s3_bucket: Bucket) -> None:
    async with _open(tmp_path, "no-such-bucket-here", s3_bucket.endpoint_url) as s3:
        with pytest.raises(StorageError, match="NoSuchBucket") as info:
            await s3.check()
    assert "s3://no-such-bucket-here/" in str(info.value)


async def test_check_names_an_unreachable_endpoint(tmp_path: Path, s3_bucket: Bucket) -> None:
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens there
    async with _open(tmp_path, s3_bucket.name, dead) as s3:
        with pytest.raises(StorageError, match="Could not connect to the endpoint URL") as info:
            await s3.check()
    assert dead in str(info.value)


async def test_sweep_aborts_leftover_uploads_under_the_prefix_only(s3: S3Storage, s3_bucket: Bucket) -> None:
    """What a process killed mid-upload leaves behind: an upload nobody will complete or abort."""
    for key in (f"{PREFIX}/crashed.mp4", "elsewhere/theirs.mp4"):
        await s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key=key)

    assert await s3.sweep_uploads(older_than_s=0) == 1

    assert await s3_bucket.pending_uploads() == ["elsewhere/theirs.mp4"]


async def test_stale_staging_files_are_swept_when_opened(tmp_path: Path, s3_bucket: Bucket) -> None:
    staging = tmp_path / "out" / "s3-staging"
    staging.mkdir(parents=True)
    stale, fresh = staging / "dl-crashed.part", staging / "dl-live.part"
    for path in (stale, fresh):
        path.write_bytes(b"half")
    os.utime(stale, (0, 0))

    async with _open(tmp_path, s3_bucket.name, s3_bucket.endpoint_url) as s3:
        assert s3.staging_dir() == staging

    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
        ("s3://my.bucket-1/a/b/", "my.bucket-1", "a/b/"),
        ("s3://bucket/videos", "bucket", "videos/"),
    ],
)
def test_parse_s3_url(url: str, bucket: str, prefix: str) -> None:
    location = parse_s3_url(url)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert location.url == f"s3://{bucket}/{prefix}"
