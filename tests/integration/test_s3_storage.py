"""Jobs whose videos are kept in S3 (a moto server on 127.0.0.1): the whole data path over loopback, the
content served through the gateway (Range, ETag, 304 as for local files) or by a presigned redirect,
readiness, and a copy that fails leaving nothing in the bucket."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.tls import client_context
from tests.conftest import Served, make_settings, serve
from tests.helpers import raw_head
from tests.s3 import Bucket, run_faulty_s3

PREFIX = "videos"


def s3_settings(tmp_path: Path, database_url: str, bucket: Bucket, **overrides: Any) -> Settings:
    values = {"storage_url": f"s3://{bucket.name}/{PREFIX}", "s3_endpoint_url": bucket.endpoint_url}
    return make_settings(tmp_path, database_url, **{**values, **overrides})


@pytest.fixture
async def proxied(tmp_path: Path, database_url: str, s3_bucket: Bucket) -> AsyncIterator[Served]:
    async with serve(s3_settings(tmp_path, database_url, s3_bucket)) as served:
        yield served


@pytest.fixture
async def redirected(tmp_path: Path, database_url: str, s3_bucket: Bucket) -> AsyncIterator[Served]:
    settings = s3_settings(tmp_path, database_url, s3_bucket, s3_content_mode="redirect", s3_presign_ttl_s=60)
    async with serve(settings) as served:
        yield served


async def _finished(gateway: Served, png_uri: str) -> dict[str, Any]:
    job_id = await gateway.submit(png_uri)
    done = await gateway.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    return done


def _staging_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "output" / "s3-staging").rglob("*") if p.is_file()]


async def test_job_video_is_stored_in_the_bucket_and_streamed_back(
    proxied: Served, s3_bucket: Bucket, png_uri: str, tmp_path: Path
) -> None:
    done = await _finished(proxied, png_uri)
    result = done["result"]
    key = f"{PREFIX}/{done['id']}.mp4"

    assert await s3_bucket.keys() == [key]
    stored = await s3_bucket.read(key)
    assert hashlib.sha256(stored).hexdigest() == result["sha256"] and len(stored) == result["bytes"]
    head = await s3_bucket.head(key)
    assert head["Metadata"]["sha256"] == result["sha256"]
    assert head["ContentType"] == "video/mp4"
    assert _staging_files(tmp_path) == []

    content = await proxied.client.get(f"/v1/jobs/{done['id']}/content")
    assert content.status_code == 200
    assert content.content == stored
    assert content.headers["content-type"] == "video/mp4"
    assert content.headers["etag"] == f'"{result["sha256"]}"'
    assert content.headers["accept-ranges"] == "bytes"
    assert content.headers["content-length"] == str(result["bytes"])
    assert content.headers["content-disposition"] == f'inline; filename="{done["id"]}.mp4"'


async def test_range_and_conditional_requests_as_for_local_files(proxied: Served, png_uri: str) -> None:
    """The same requests and answers as test_happy_path.test_range_and_conditional_requests."""
    done = await _finished(proxied, png_uri)
    url = f"/v1/jobs/{done['id']}/content"
    total = done["result"]["bytes"]
    full = (await proxied.client.get(url)).content

    part = await proxied.client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{total}"
    assert part.content == full[100:200]

    tail = await proxied.client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == full[-50:]

    rest = await proxied.client.get(url, headers={"Range": f"bytes={total - 10}-"})
    assert rest.status_code == 206 and rest.content == full[-10:]
    assert rest.headers["content-range"] == f"bytes {total - 10}-{total - 1}/{total}"

    beyond = await proxied.client.get(url, headers={"Range": f"bytes={total + 10}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{total}"

    etag = done["result"]["sha256"]
    cached = await proxied.client.get(url, headers={"If-None-Match": f'"{etag}"'})
    assert cached.status_code == 304 and cached.content == b""
    changed = await proxied.client.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200

    # A partial copy of another version: the client gets the whole video, not a piece of this one.
    stale = await proxied.client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == full
    fresh = await proxied.client.get(url, headers={"Range": "bytes=0-9", "If-Range": f'"{etag}"'})
    assert fresh.status_code == 206 and fresh.content == full[:10]


async def test_head_of_a_video_in_the_bucket_opens_no_stream(
    tmp_path: Path, database_url: str, s3_bucket: Bucket, png_uri: str
) -> None:
    """A player asks for the size first: HEAD gets the GET's status and headers, from the job and a HEAD
    of the object — the object itself is never read for it."""
    async with run_faulty_s3(s3_bucket.endpoint_url) as (proxy_url, s3):
        settings = s3_settings(tmp_path, database_url, s3_bucket, s3_endpoint_url=proxy_url)
        async with serve(settings) as served:
            done = await _finished(served, png_uri)
            url = f"/v1/jobs/{done['id']}/content"
            for headers in ({}, {"Range": "bytes=100-199"}, {"Range": "bytes=-50"}):
                get = await served.client.get(url, headers=headers)
                s3.requests.clear()
                status, head, body = await raw_head(served.url, url, headers)
                assert [method for method, _ in s3.requests] == ["HEAD"], s3.requests
                assert (status, body) == (get.status_code, b"")
                per_answer = ("date", "connection", "x-request-id")  # each answer's own
                assert {k: v for k, v in head.items() if k not in per_answer} == {
                    k: v for k, v in get.headers.items() if k not in per_answer
                }
            assert head["content-length"] == "50" and head["content-range"].startswith("bytes ")
            await s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=f"{PREFIX}/{done['id']}.mp4")
            status, _, _ = await raw_head(served.url, url)
            assert status == 404  # as GET says: video_missing


async def test_a_video_deleted_from_the_bucket_is_reported_missing(
    proxied: Served, s3_bucket: Bucket, png_uri: str
) -> None:
    done = await _finished(proxied, png_uri)
    await s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=f"{PREFIX}/{done['id']}.mp4")

    response = await proxied.client.get(f"/v1/jobs/{done['id']}/content")

    assert response.status_code == 404
    assert response.json()["code"] == "video_missing"


async def test_redirect_mode_sends_the_client_to_a_presigned_url(
    redirected: Served, s3_bucket: Bucket, png_uri: str
) -> None:
    done = await _finished(redirected, png_uri)
    url = f"/v1/jobs/{done['id']}/content"
    etag = f'"{done["result"]["sha256"]}"'

    response = await redirected.client.get(url)

    assert response.status_code == 307
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "private, no-store"  # the URL expires; never reuse it
    location = response.headers["location"]
    assert location.startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/{PREFIX}/{done['id']}.mp4?")
    assert "X-Amz-Expires=60" in location

    async with httpx.AsyncClient(trust_env=False, verify=client_context(trust_env=False)) as direct:
        video = await direct.get(location)
        part = await direct.get(location, headers={"Range": "bytes=100-199"})
    assert video.status_code == 200
    assert hashlib.sha256(video.content).hexdigest() == done["result"]["sha256"]
    assert video.headers["content-type"] == "video/mp4"
    assert part.status_code == 206 and part.content == video.content[100:200]

    # Following the redirect is what a browser or `curl -L` does.
    followed = await redirected.client.get(url, follow_redirects=True)
    assert followed.status_code == 200 and followed.content == video.content

    cached = await redirected.client.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304


async def test_readiness_checks_the_bucket(
    proxied: Served, tmp_path: Path, database_url: str, s3_bucket: Bucket
) -> None:
    ready = await proxied.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["storage"] == "ok"
    assert await s3_bucket.keys() == []  # the probe object is removed again

    settings = make_settings(
        tmp_path / "other",
        database_url,
        storage_url="s3://no-such-bucket-here/videos",
        s3_endpoint_url=s3_bucket.endpoint_url,
    )
    async with serve(settings) as missing:
        not_ready = await missing.client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["storage"] == "error: StorageError"


async def test_s3_outage_while_serving_is_a_clear_503(
    tmp_path: Path, database_url: str, s3_bucket: Bucket, png_uri: str
) -> None:
    settings = s3_settings(tmp_path, database_url, s3_bucket)
    async with serve(settings) as gateway:
        done = await _finished(gateway, png_uri)
    # The same database and job, served by a gateway whose S3 endpoint does not answer.
    settings = s3_settings(tmp_path, database_url, s3_bucket, s3_endpoint_url="http://127.0.0.1:9")
    async with serve(settings) as broken:
        response = await broken.client.get(f"/v1/jobs/{done['id']}/content")
    assert response.status_code == 503
    assert response.json()["code"] == "storage_unavailable"
    assert response.headers["retry-after"]


async def test_video_url_expiring_before_the_copy_leaves_nothing_in_the_bucket(
    tmp_path: Path, database_url: str, s3_bucket: Bucket, png_uri: str
) -> None:
    settings = s3_settings(tmp_path, database_url, s3_bucket, sandbox_video_ttl_s=2.0)
    async with serve(settings) as gateway:
        gateway.sandbox.faults.add("download:503")  # every download fails, transiently
        job_id = await gateway.submit(png_uri)
        done = await gateway.drive(job_id, "failed", "succeeded")
        assert done["error"]["code"] == "video_url_expired"
        assert gateway.sandbox.stats.downloads >= 2  # retried while the URL was valid

    assert await s3_bucket.keys() == []
    assert await s3_bucket.pending_uploads() == []
    assert _staging_files(tmp_path) == []
