"""copy_video against a real loopback HTTP server: what lands in storage, and what never does."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.storage.copy import CopyError, copy_video, parse_url_expiry
from app.storage.local import LocalStorage
from tests.helpers import fill_filesystem, small_filesystem

from .support import Clip, Route, VideoServer, stored_files

MAX = 64 * 1024 * 1024
TIMEOUT = 5.0


async def _copy(
    client: httpx.AsyncClient,
    url: str,
    storage: LocalStorage,
    key: str = "job_1.mp4",
    *,
    max_bytes: int = MAX,
    timeout_s: float = TIMEOUT,
    expires_at: datetime | None = None,
) -> CopyError:
    """Run a copy that must fail; return the error after checking nothing was left behind."""
    with pytest.raises(CopyError) as info:
        await copy_video(
            client, url, storage, key, max_bytes=max_bytes, timeout_s=timeout_s, expires_at=expires_at
        )
    assert stored_files(storage) == []
    assert await storage.stat(key) is None
    return info.value


async def test_copy_stores_identical_bytes_and_probes_them(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, av_clip: Clip
) -> None:
    url, route = video_server.add(Route(body=av_clip.data))

    result = await copy_video(http_client, url, storage, "job_1.mp4", max_bytes=MAX, timeout_s=TIMEOUT)

    path = storage.root / "job_1.mp4"
    assert path.read_bytes() == av_clip.data
    assert result.stored.sha256 == av_clip.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.stored.size_bytes == len(av_clip.data)
    assert result.stored.content_type == "video/mp4"
    assert await storage.stat("job_1.mp4") == result.stored
    assert result.probe.duration_s == pytest.approx(2.0, abs=0.05)
    assert result.probe.fps == pytest.approx(30.0)
    assert (result.probe.width, result.probe.height) == (160, 96)
    assert (result.probe.video_codec, result.probe.container) == ("h264", "mp4")
    assert (result.probe.has_audio, result.probe.audio_codec) == (True, "aac")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stored_files(storage) == ["job_1.mp4"]  # staging is empty again
    assert route.hits == 1


async def test_copy_of_silent_clip_reports_no_audio(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, silent_clip: Clip
) -> None:
    url, _ = video_server.add(Route(body=silent_clip.data))

    result = await copy_video(
        http_client, url, storage, "2025/06/job_2.mp4", max_bytes=MAX, timeout_s=TIMEOUT
    )

    assert (storage.root / "2025/06/job_2.mp4").read_bytes() == silent_clip.data
    assert result.probe.duration_s == pytest.approx(1.0, abs=0.05)
    assert (result.probe.width, result.probe.height, result.probe.fps) == (64, 64, 30.0)
    assert (result.probe.has_audio, result.probe.audio_codec) == (False, None)


async def test_copy_follows_redirects(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, silent_clip: Clip
) -> None:
    target, _ = video_server.add(Route(body=silent_clip.data))
    url, _ = video_server.add(Route(mode="redirect", location=target))

    result = await copy_video(http_client, url, storage, "job.mp4", max_bytes=MAX, timeout_s=TIMEOUT)

    assert result.stored.sha256 == silent_clip.sha256


async def test_copy_replaces_an_existing_object(
    video_server: VideoServer,
    http_client: httpx.AsyncClient,
    storage: LocalStorage,
    silent_clip: Clip,
    av_clip: Clip,
) -> None:
    first, _ = video_server.add(Route(body=silent_clip.data))
    second, _ = video_server.add(Route(body=av_clip.data))
    await copy_video(http_client, first, storage, "job.mp4", max_bytes=MAX, timeout_s=TIMEOUT)

    result = await copy_video(http_client, second, storage, "job.mp4", max_bytes=MAX, timeout_s=TIMEOUT)

    assert (storage.root / "job.mp4").read_bytes() == av_clip.data
    assert result.stored.sha256 == av_clip.sha256
    assert stored_files(storage) == ["job.mp4"]


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (403, "video_url_expired", False),
        (410, "video_url_expired", False),
        (404, "video_not_found", False),
        (400, "download_rejected", False),
        (408, "download_failed", True),
        (429, "download_failed", True),
        (500, "download_failed", True),
        (503, "download_failed", True),
    ],
)
async def test_error_statuses_map_to_stable_codes(
    video_server: VideoServer,
    http_client: httpx.AsyncClient,
    storage: LocalStorage,
    status: int,
    code: str,
    transient: bool,
) -> None:
    body = (
        b"<?xml version='1.0'?>"
        b"<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>"
    )
    url, _ = video_server.add(Route(mode="status", status=status, body=body))

    error = await _copy(http_client, url, storage)

    assert (error.code, error.transient, error.status_code) == (code, transient, status)
    assert "AccessDenied: Request has expired." in error.message


async def test_429_carries_retry_after(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage
) -> None:
    url, _ = video_server.add(Route(mode="status", status=429, headers={"Retry-After": "7"}))

    error = await _copy(http_client, url, storage)

    assert (error.code, error.transient, error.retry_after_s) == ("download_failed", True, 7.0)


@pytest.mark.parametrize("mode", ["cut", "long_cl"])
async def test_truncated_body_is_transient_and_leaves_nothing(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, av_clip: Clip, mode: str
) -> None:
    url, _ = video_server.add(Route(mode=mode, body=av_clip.data))

    error = await _copy(http_client, url, storage)

    assert (error.code, error.transient) == ("download_failed", True)


async def test_content_length_mismatch_is_caught_even_without_h11(
    storage: LocalStorage, silent_clip: Clip
) -> None:
    # A transport that does not police Content-Length itself (h11 does): the copy's own check decides.
    def handler(request: httpx.Request) -> httpx.Response:
        declared = str(len(silent_clip.data) + 10)
        return httpx.Response(
            200, headers={"Content-Length": declared}, stream=httpx.ByteStream(silent_clip.data)
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        error = await _copy(client, "http://video.test/x.mp4", storage)

    assert (error.code, error.transient) == ("download_failed", True)
    assert "truncated" in error.message


async def test_body_shorter_than_the_file_is_unplayable(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, av_clip: Clip
) -> None:
    # The server declares (and sends) fewer bytes than the video has: the transfer looks complete, the
    # probe finds frames missing.
    url, _ = video_server.add(Route(mode="short_cl", body=av_clip.data))

    error = await _copy(http_client, url, storage)

    assert (error.code, error.transient) == ("video_unplayable", False)
    assert "truncated" in error.message


async def test_stalled_download_times_out(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, av_clip: Clip
) -> None:
    url, route = video_server.add(Route(mode="stall", body=av_clip.data))

    error = await _copy(http_client, url, storage, timeout_s=0.2)

    assert (error.code, error.transient) == ("download_failed", True)
    assert "timed out" in error.message
    assert route.stalled.is_set()
    route.release.set()


async def test_declared_oversize_is_refused_before_the_body(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, av_clip: Clip
) -> None:
    url, _ = video_server.add(Route(body=av_clip.data))

    error = await _copy(http_client, url, storage, max_bytes=len(av_clip.data) - 1)

    assert (error.code, error.transient) == ("video_too_large", False)
    assert str(len(av_clip.data)) in error.message


async def test_endless_body_is_cut_off_at_the_limit(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage
) -> None:
    url, route = video_server.add(Route(mode="endless"))

    async with asyncio.timeout(10):
        error = await _copy(http_client, url, storage, max_bytes=3 * 1024 * 1024)

    assert (error.code, error.transient) == ("video_too_large", False)
    assert route.hits == 1


async def test_exactly_max_bytes_is_accepted(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, silent_clip: Clip
) -> None:
    url, _ = video_server.add(Route(body=silent_clip.data))

    result = await copy_video(
        http_client, url, storage, "job.mp4", max_bytes=len(silent_clip.data), timeout_s=TIMEOUT
    )

    assert result.stored.size_bytes == len(silent_clip.data)


async def test_not_a_video_is_unplayable(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage
) -> None:
    url, _ = video_server.add(Route(body=b"<html>definitely not a video</html>" * 100))

    error = await _copy(http_client, url, storage)

    assert (error.code, error.transient) == ("video_unplayable", False)
    # The message becomes the job's error: it must not show where the gateway keeps its files.
    assert str(storage.root) not in error.message
    assert ".staging" not in error.message and ".part" not in error.message
    assert ".part" in error.detail or "not playable" in error.detail  # the log keeps the whole story


async def test_damaged_video_is_unplayable(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, av_clip: Clip
) -> None:
    data = av_clip.data
    start, length = len(data) // 2, len(data) // 6
    url, _ = video_server.add(Route(body=data[:start] + bytes(length) + data[start + length :]))

    error = await _copy(http_client, url, storage)

    assert (error.code, error.transient) == ("video_unplayable", False)
    assert "cannot be decoded" in error.message


async def test_video_larger_than_the_free_space_is_refused_before_writing(
    video_server: VideoServer, http_client: httpx.AsyncClient, tmp_path: Path, av_clip: Clip
) -> None:
    with small_filesystem(tmp_path / "disk", 256 * 1024) as disk:
        storage = LocalStorage(disk / "videos")
        fill_filesystem(disk, leave=8 * 1024)
        url, _ = video_server.add(Route(body=av_clip.data))

        error = await _copy(http_client, url, storage)

    assert (error.code, error.transient) == ("storage_failed", True)
    assert error.out_of_space and error.needed_bytes == len(av_clip.data)
    assert "disk space" in error.message and str(tmp_path) not in error.message


async def test_disk_filling_up_while_writing_is_transient(
    video_server: VideoServer, http_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with small_filesystem(tmp_path / "disk", 256 * 1024) as disk:
        storage = LocalStorage(disk / "videos")
        url, _ = video_server.add(Route(mode="endless"))  # no Content-Length: only the write can tell

        async with asyncio.timeout(10):
            error = await _copy(http_client, url, storage)

    assert (error.code, error.transient) == ("storage_failed", True)
    assert error.out_of_space and error.needed_bytes is not None and error.needed_bytes > 0
    assert error.message == "cannot write the staging file: No space left on device"


async def test_past_expiry_fails_without_a_request(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, silent_clip: Clip
) -> None:
    expired = int((datetime.now(UTC) - timedelta(seconds=1)).timestamp())
    url, route = video_server.add(Route(body=silent_clip.data), query=f"Expires={expired}&Signature=x")

    error = await _copy(http_client, url, storage, expires_at=parse_url_expiry(url))

    assert (error.code, error.transient) == ("video_url_expired", False)
    assert route.hits == 0


async def test_future_expiry_copies(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, silent_clip: Clip
) -> None:
    later = int((datetime.now(UTC) + timedelta(hours=24)).timestamp())
    url, _ = video_server.add(Route(body=silent_clip.data), query=f"Expires={later}&OSSAccessKeyId=k")

    result = await copy_video(
        http_client,
        url,
        storage,
        "job.mp4",
        max_bytes=MAX,
        timeout_s=TIMEOUT,
        expires_at=parse_url_expiry(url),
    )

    assert result.stored.sha256 == silent_clip.sha256


async def test_naive_expiry_is_a_programming_error(
    http_client: httpx.AsyncClient, storage: LocalStorage
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await copy_video(
            http_client,
            "http://127.0.0.1:9/x.mp4",
            storage,
            "job.mp4",
            max_bytes=MAX,
            timeout_s=TIMEOUT,
            expires_at=datetime(2030, 1, 1),  # noqa: DTZ001 - the point of the test
        )


async def test_connection_refused_is_transient(http_client: httpx.AsyncClient, storage: LocalStorage) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    error = await _copy(http_client, f"http://127.0.0.1:{port}/x.mp4", storage)

    assert (error.code, error.transient) == ("download_failed", True)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x.mp4", "not a url"])
async def test_unusable_url_is_permanent(
    http_client: httpx.AsyncClient, storage: LocalStorage, url: str
) -> None:
    error = await _copy(http_client, url, storage)

    assert (error.code, error.transient) == ("video_url_invalid", False)


@pytest.mark.parametrize("key", ["../escape.mp4", "/abs.mp4", "a\\b.mp4", ".staging/x.mp4"])
async def test_bad_key_is_refused_before_downloading(
    video_server: VideoServer,
    http_client: httpx.AsyncClient,
    storage: LocalStorage,
    silent_clip: Clip,
    key: str,
) -> None:
    url, route = video_server.add(Route(body=silent_clip.data))

    with pytest.raises(ValueError, match="storage key"):
        await copy_video(http_client, url, storage, key, max_bytes=MAX, timeout_s=TIMEOUT)

    assert route.hits == 0
    assert stored_files(storage) == []


async def test_key_is_absent_until_the_copy_is_complete(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, av_clip: Clip
) -> None:
    url, route = video_server.add(Route(mode="stall", body=av_clip.data, stall_after=len(av_clip.data) // 2))
    task = asyncio.create_task(
        copy_video(http_client, url, storage, "job.mp4", max_bytes=MAX, timeout_s=TIMEOUT)
    )
    assert await asyncio.to_thread(route.stalled.wait, 5)

    # Half the body is on its way: the key must not exist in any form.
    assert await storage.stat("job.mp4") is None
    assert storage.local_path("job.mp4") is None
    assert all(name.startswith(".staging/") for name in stored_files(storage))

    route.release.set()
    result = await asyncio.wait_for(task, 10)

    assert (storage.root / "job.mp4").read_bytes() == av_clip.data
    assert result.stored.sha256 == av_clip.sha256
    assert stored_files(storage) == ["job.mp4"]


async def test_cancelled_copy_leaves_nothing(
    video_server: VideoServer, http_client: httpx.AsyncClient, storage: LocalStorage, av_clip: Clip
) -> None:
    url, route = video_server.add(Route(mode="stall", body=av_clip.data))
    task = asyncio.create_task(
        copy_video(http_client, url, storage, "job.mp4", max_bytes=MAX, timeout_s=TIMEOUT)
    )
    assert await asyncio.to_thread(route.stalled.wait, 5)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert stored_files(storage) == []
    route.release.set()


async def test_publish_failure_is_transient_and_leaves_nothing(
    video_server: VideoServer,
    http_client: httpx.AsyncClient,
    storage: LocalStorage,
    silent_clip: Clip,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = video_server.add(Route(body=silent_clip.data))

    def no_space(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", no_space)

    error = await _copy(http_client, url, storage)

    assert (error.code, error.transient) == ("storage_failed", True)


async def test_staging_failure_is_transient(
    video_server: VideoServer, http_client: httpx.AsyncClient, tmp_path: Path, silent_clip: Clip
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    storage = LocalStorage(blocker)  # its staging directory cannot be created
    url, route = video_server.add(Route(body=silent_clip.data))

    with pytest.raises(CopyError) as info:
        await copy_video(http_client, url, storage, "job.mp4", max_bytes=MAX, timeout_s=TIMEOUT)

    assert (info.value.code, info.value.transient) == ("storage_failed", True)
    assert route.hits == 0


def test_copy_error_reads_well() -> None:
    error = CopyError("video_not_found", "gone", False, status_code=404)

    assert str(error) == "video_not_found: gone"
    assert (error.code, error.message, error.transient, error.status_code) == (
        "video_not_found",
        "gone",
        False,
        404,
    )
