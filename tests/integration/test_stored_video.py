"""What the gateway stores is checked against what was asked, end to end through the sandbox: a damaged video
fails (without showing server paths), a shorter one succeeds with a warning and counts what it is, and a
full disk is logged, shown on the job and in `/readyz` while the copy retries — then the job succeeds."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from app.storage.copy import CopyErrorCode
from tests.conftest import Served, make_settings, serve
from tests.helpers import fill_filesystem, small_filesystem

KIB = 1024
KEY = "alice-key-" + "a" * 32


def assert_no_server_path(text: str, *paths: Path) -> None:
    assert ".staging" not in text and ".part" not in text, text
    assert not re.search(r"(^|[\s'\"(])/[\w.-]+/", text), text  # no absolute path of any kind
    for path in paths:
        assert str(path) not in text, text


async def test_a_damaged_video_fails_unplayable_and_the_message_shows_no_path(
    gateway: Served, png_uri: str, tmp_path: Path
) -> None:
    job_id = await gateway.submit(png_uri, prompt="a cat [sandbox:corrupt]")

    job = await gateway.drive(job_id, "succeeded", "failed")

    assert (job["status"], job["error"]["code"]) == ("failed", CopyErrorCode.VIDEO_UNPLAYABLE)
    assert "cannot be decoded" in job["error"]["message"]
    assert_no_server_path(job["error"]["message"], tmp_path)
    assert job["result"] is None


async def test_a_shorter_video_succeeds_with_a_warning_and_the_quota_counts_what_was_delivered(
    tmp_path: Path, database_url: str, png_uri: str
) -> None:
    settings = make_settings(
        tmp_path, database_url, gateway_api_keys=f"alice:{KEY}", quota_video_seconds_per_day=14
    )
    async with serve(settings) as served:
        served.headers = {"Authorization": f"Bearer {KEY}"}
        job_id = await served.submit(png_uri, duration=9, prompt="a cat [sandbox:duration/5]")

        job = await served.drive(job_id, "succeeded", "failed")

        assert job["status"] == "succeeded"
        assert job["result"]["duration"] == pytest.approx(5.0, abs=0.05)
        assert "the stored video lasts 5 s, not the 9 s asked" in job["warnings"]
        # 5 delivered + 9 more fit in 14 a day; had the first counted the 9 asked, this would be refused.
        body = {"prompt": "a cat", "duration": 9, "size": "1280*720", "reference_image": png_uri}
        second = await served.client.post("/v1/jobs", json=body, headers=served.headers)
        assert second.status_code == 202, second.text
        third = await served.client.post("/v1/jobs", json=body, headers=served.headers)
        assert third.status_code == 429
        assert "used 14 of its 14 video-seconds" in third.json()["detail"]


async def test_a_full_disk_is_logged_shown_while_retrying_and_the_job_succeeds_once_space_is_back(
    tmp_path: Path, database_url: str, png_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    with small_filesystem(tmp_path / "disk", 512 * KIB) as disk:
        settings = make_settings(tmp_path, database_url, output_dir=disk, storage_min_free_bytes=16 * KIB)
        async with serve(settings) as served:
            assert (await served.client.get("/readyz")).status_code == 200
            # More free than the minimum (a small probe write still succeeds), less than the video needs
            # (the sandbox's clip of this flat image is about 43 KiB).
            filler = fill_filesystem(disk, leave=24 * KIB)
            job_id = await served.submit(png_uri)

            with caplog.at_level(logging.WARNING, logger="app.jobs.poller"):
                await served.pump_until(lambda: retrying(served, job_id), what="the copy to be retrying")
            job = await served.job(job_id)

            assert (job["status"], job["error"]) == ("storing", None)
            retry = job["retry"]
            assert retry["reason"] == CopyErrorCode.STORAGE_FAILED
            assert "disk space" in retry["message"] or "No space left" in retry["message"]
            assert retry["attempts"] >= 1 and retry["next_attempt_at"] is not None
            assert_no_server_path(retry["message"], disk)
            logged = [r for r in caplog.records if job_id in r.getMessage() and r.levelno == logging.WARNING]
            assert logged and "storage_failed" in logged[0].getMessage()

            ready = await served.client.get("/readyz")
            assert ready.status_code == 503
            storage = ready.json()["checks"]["storage"]
            assert storage.startswith("error: out of disk space"), storage
            assert_no_server_path(storage, disk)

            filler.unlink()
            assert (await served.client.get("/readyz")).status_code == 200
            done = await served.drive(job_id, "succeeded", "failed")

            assert (done["status"], done["retry"], done["error"]) == ("succeeded", None, None)
            assert done["result"]["bytes"] > 24 * KIB
            assert (await served.client.get(f"/v1/jobs/{job_id}/content")).status_code == 200


async def retrying(served: Served, job_id: str) -> bool:
    return bool((await served.job(job_id))["retry"])


async def test_readiness_reports_low_disk_space(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, storage_min_free_bytes=1 << 60)
    async with serve(settings) as served:
        ready = await served.client.get("/readyz")

    assert ready.status_code == 503
    assert ready.json()["checks"]["storage"].startswith("error: low disk space:")
