"""A stored video's life after the job: `DELETE /v1/jobs/{id}` (a shared object goes with its last job),
the poster frame (`/thumbnail`, rendered once) and sprite sheet, and STORAGE_RETENTION_S (410, the job
stays with `result.expired_at`, reuse never hands out an expired video)."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import update

from app.db.base import utcnow
from app.jobs.models import Job
from app.storage.renditions import SPRITE_TILE_WIDTH, sprite_grid
from tests.conftest import Served, make_settings, serve
from tests.integration.test_s3_storage import PREFIX, s3_settings
from tests.s3 import Bucket

ALICE = "alice-key-" + "a" * 32
BOB = "bob-key-" + "b" * 32


def seeded(png_uri: str, **fields: Any) -> dict[str, Any]:
    return {
        "prompt": "a cat",
        "duration": 2,
        "size": "1280*720",
        "seed": 7,
        "reference_image": png_uri,
        **fields,
    }


async def create(served: Served, payload: dict[str, Any]) -> dict[str, Any]:
    response = await served.client.post("/v1/jobs", json=payload, headers=served.headers)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def videos(tmp_path: Path) -> Path:
    return tmp_path / "output" / "ai-video-wan-video" / "videos"


def stored_names(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in videos(tmp_path).iterdir() if p.is_file())


def problem_code(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    code: str = response.json()["code"]
    return code


async def test_delete_a_finished_job_and_its_shared_video_goes_with_the_last_job(
    tmp_path: Path, database_url: str, png_uri: str
) -> None:
    settings = make_settings(tmp_path, database_url, gateway_api_keys=f"alice:{ALICE},bob:{BOB}")
    async with serve(settings) as gw:
        gw.headers = {"Authorization": f"Bearer {ALICE}"}
        keyed = {**gw.headers, "Idempotency-Key": "k1"}
        first = (await gw.client.post("/v1/jobs", json=seeded(png_uri), headers=keyed)).json()
        done = await gw.drive(first["id"], "succeeded")
        copy = await create(gw, seeded(png_uri))  # reuses the stored video: one object, two jobs
        assert copy["cached"] is True
        video = videos(tmp_path) / f"{first['id']}.mp4"
        assert video.is_file()

        # The poster frame: a JPEG of the video's size, rendered once and stored beside the video.
        thumb = await gw.client.get(f"/v1/jobs/{copy['id']}/thumbnail", headers=gw.headers)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(thumb.content))
        assert image.format == "JPEG"
        assert image.size == (done["result"]["width"], done["result"]["height"])
        again = await gw.client.get(f"/v1/jobs/{first['id']}/thumbnail", headers=gw.headers)
        assert again.content == thumb.content and again.headers["etag"] == thumb.headers["etag"]
        assert gw.gateway.renditions.rendered == 1
        cached = await gw.client.get(
            f"/v1/jobs/{first['id']}/thumbnail",
            headers={**gw.headers, "If-None-Match": thumb.headers["etag"]},
        )
        assert cached.status_code == 304
        assert (videos(tmp_path) / f"{first['id']}.mp4.thumbnail.jpg").is_file()

        # Unfinished: 409, cancel it first (and no thumbnail yet). Another tenant's job: 404.
        running = await create(gw, seeded(png_uri, cache=False))
        assert problem_code(await gw.client.delete(f"/v1/jobs/{running['id']}", headers=gw.headers), 409) == (
            "job_not_finished"
        )
        no_frame = await gw.client.get(f"/v1/jobs/{running['id']}/thumbnail", headers=gw.headers)
        assert problem_code(no_frame, 409) == "job_not_succeeded"
        bob = {"Authorization": f"Bearer {BOB}"}
        assert (
            problem_code(await gw.client.delete(f"/v1/jobs/{first['id']}", headers=bob), 404) == "not_found"
        )

        # The original goes; the copy still shows the shared video.
        deleted = await gw.client.delete(f"/v1/jobs/{first['id']}", headers=gw.headers)
        assert deleted.status_code == 204 and deleted.content == b""
        for path in ("", "/content", "/thumbnail", "/events", "/deliveries"):
            response = await gw.client.get(f"/v1/jobs/{first['id']}{path}", headers=gw.headers)
            assert response.status_code == 404, (path, response.text)
        assert problem_code(await gw.client.delete(f"/v1/jobs/{first['id']}", headers=gw.headers), 404)
        listed = (await gw.client.get("/v1/jobs", headers=gw.headers)).json()["data"]
        assert first["id"] not in [j["id"] for j in listed]
        # Its Idempotency-Key stays used: a late retry is told, not billed for a second job.
        retried = await gw.client.post("/v1/jobs", json=seeded(png_uri), headers=keyed)
        assert problem_code(retried, 410) == "job_deleted"
        assert video.is_file()
        assert (await gw.client.get(f"/v1/jobs/{copy['id']}/content", headers=gw.headers)).status_code == 200

        # The last job that shows it: the video and its renditions leave the store.
        assert (await gw.client.delete(f"/v1/jobs/{copy['id']}", headers=gw.headers)).status_code == 204
        assert not video.exists()
        assert stored_names(tmp_path) == []
        # A new identical request is not handed the deleted video: it is generated anew.
        fresh = await create(gw, seeded(png_uri))
        assert fresh["cached"] is False and fresh["status"] == "queued"


async def backdate(served: Served, job_id: str, hours: float) -> None:
    async with served.gateway.sessions.begin() as session:
        await session.execute(
            update(Job).where(Job.id == job_id).values(finished_at=utcnow() - timedelta(hours=hours))
        )


async def test_retention_expires_a_video_once_every_job_showing_it_is_old(
    tmp_path: Path, database_url: str, png_uri: str
) -> None:
    async with serve(make_settings(tmp_path, database_url, storage_retention_s=3600)) as gw:
        retention = gw.gateway.retention
        assert retention is not None
        first = await create(gw, seeded(png_uri))
        await gw.drive(first["id"], "succeeded")
        copy = await create(gw, seeded(png_uri))
        assert (await gw.client.get(f"/v1/jobs/{first['id']}/thumbnail")).status_code == 200
        assert await retention.run_once() == 0  # nothing is old yet

        # The original is old, but its copy (same stored object) is not: the video stays.
        await backdate(gw, first["id"], hours=2)
        assert await retention.run_once() == 1
        assert retention.removed == 0
        assert (await gw.client.get(f"/v1/jobs/{first['id']}/content")).status_code == 200
        assert await retention.run_once() == 0  # the job waits for its copy, leased: not claimed again

        await backdate(gw, copy["id"], hours=2)
        assert await retention.run_once() == 1
        assert retention.removed == 1
        assert stored_names(tmp_path) == []
        for job_id in (first["id"], copy["id"]):
            job = await gw.job(job_id)
            assert job["status"] == "succeeded" and job["result"]["expired_at"] is not None
            content = await gw.client.get(f"/v1/jobs/{job_id}/content")
            assert problem_code(content, 410) == "video_expired"
            assert problem_code(await gw.client.get(f"/v1/jobs/{job_id}/thumbnail"), 410) == "video_expired"
            # The signed, key-less link answers as /content does.
            assert problem_code(await gw.client.get(job["result"]["signed_url"]), 410) == "video_expired"
        assert await retention.run_once() == 0
        # Reuse never hands out an expired video: an identical request is generated anew.
        fresh = await create(gw, seeded(png_uri))
        assert fresh["cached"] is False and fresh["status"] == "queued"


async def test_renditions_and_delete_on_s3(
    tmp_path: Path, database_url: str, s3_bucket: Bucket, png_uri: str
) -> None:
    async with serve(s3_settings(tmp_path, database_url, s3_bucket)) as gw:
        job = await create(gw, seeded(png_uri, seed=None))
        done = await gw.drive(job["id"], "succeeded")
        # The signed link streams the video from the bucket, as /content does (206 for a Range).
        signed = await gw.client.get(done["result"]["signed_url"], headers={"Range": "bytes=0-7"})
        assert signed.status_code == 206 and signed.content[4:8] == b"ftyp"
        thumb = await gw.client.get(f"/v1/jobs/{job['id']}/thumbnail")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(thumb.content)).size == (
            done["result"]["width"],
            done["result"]["height"],
        )

        sheet = await gw.gateway.renditions.ensure(f"{job['id']}.mp4", "spritesheet")
        assert sheet.key == f"{job['id']}.mp4.spritesheet.jpg" and sheet.content_type == "image/jpeg"
        image = Image.open(io.BytesIO(await s3_bucket.read(f"{PREFIX}/{sheet.key}")))
        columns, rows = sprite_grid()
        tile_height = round(done["result"]["height"] * SPRITE_TILE_WIDTH / done["result"]["width"])
        assert image.format == "JPEG" and image.size == (columns * SPRITE_TILE_WIDTH, rows * tile_height)
        assert len(await s3_bucket.keys()) == 3
        assert (await gw.gateway.renditions.ensure(f"{job['id']}.mp4", "spritesheet")) == sheet
        assert gw.gateway.renditions.rendered == 2

        assert (await gw.client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        assert await s3_bucket.keys() == []
        assert (await gw.client.get(f"/v1/jobs/{job['id']}")).status_code == 404
