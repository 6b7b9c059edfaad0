"""Result reuse: an identical seeded request gets a succeeded job's stored video (no upstream task), or
follows an identical running job; per tenant, only with a seed, never with `"cache": false`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import update

from app.db.base import utcnow
from app.jobs.models import Job
from app.jobs.schemas import JobCreate
from tests.conftest import Served, make_settings, serve
from tests.helpers import wait_for


def seeded(png_uri: str, **fields: Any) -> dict[str, Any]:
    return {
        "prompt": "a cat",
        "duration": 2,
        "size": "1280*720",
        "seed": 42,
        "reference_image": png_uri,
        **fields,
    }


async def create(served: Served, payload: dict[str, Any]) -> dict[str, Any]:
    response = await served.client.post("/v1/jobs", json=payload)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def event_types(served: Served, job_id: str) -> list[str]:
    return [event.type for event in await served.gateway.service.events_after(job_id, 0)]


async def content(served: Served, job_id: str) -> bytes:
    response = await served.client.get(f"/v1/jobs/{job_id}/content")
    assert response.status_code == 200, response.text
    return response.content


async def test_an_identical_seeded_request_reuses_the_stored_video(gateway: Served, png_uri: str) -> None:
    first = await create(gateway, seeded(png_uri))
    done = await gateway.drive(first["id"], "succeeded")
    assert done["cached"] is False and done["source_job_id"] is None

    reused = await create(gateway, seeded(png_uri, metadata={"mine": True}))
    assert reused["id"] != first["id"]
    assert reused["status"] == "succeeded" and reused["cached"] is True
    assert reused["source_job_id"] == first["id"] and reused["upstream"] is None
    assert reused["result"]["sha256"] == done["result"]["sha256"]
    assert reused["result"]["video_url"].endswith(f"/v1/jobs/{reused['id']}/content")
    assert reused["metadata"] == {"mine": True}
    assert await content(gateway, reused["id"]) == await content(gateway, first["id"])
    assert await event_types(gateway, reused["id"]) == ["job.succeeded"]  # webhooks and SSE see it end
    assert gateway.sandbox.stats.created_total == 1


async def test_no_reuse_without_a_seed_or_with_cache_false(gateway: Served, png_uri: str) -> None:
    unseeded = {k: v for k, v in seeded(png_uri).items() if k != "seed"}
    await gateway.drive((await create(gateway, unseeded))["id"], "succeeded")
    again = await create(gateway, unseeded)
    assert again["status"] == "queued" and again["source_job_id"] is None

    await gateway.drive((await create(gateway, seeded(png_uri)))["id"], "succeeded")
    fresh = await create(gateway, seeded(png_uri, cache=False))
    assert fresh["status"] == "queued" and fresh["source_job_id"] is None and fresh["cached"] is False

    await gateway.drive(again["id"], "submitted", "running", "storing", "succeeded")
    await gateway.drive(fresh["id"], "submitted", "running", "storing", "succeeded")
    assert gateway.sandbox.stats.created_total == 4


async def test_an_identical_request_follows_the_running_job(gateway: Served, png_uri: str) -> None:
    first = await create(gateway, seeded(png_uri))
    follower = await create(gateway, seeded(png_uri))
    assert follower["status"] == "queued" and follower["source_job_id"] == first["id"]
    assert follower["cached"] is False

    # Never submitted while it follows, even when due (its schedule says "at its deadline").
    async with gateway.gateway.sessions.begin() as session:
        await session.execute(update(Job).where(Job.id == follower["id"]).values(next_attempt_at=utcnow()))
    await gateway.gateway.poller.run_once()
    assert (await gateway.job(follower["id"]))["status"] == "queued"
    assert gateway.sandbox.stats.created_total == 1

    done = await gateway.drive(first["id"], "succeeded")
    followed = await gateway.job(follower["id"])
    assert followed["status"] == "succeeded" and followed["cached"] is True
    assert followed["result"]["sha256"] == done["result"]["sha256"]
    assert await content(gateway, follower["id"]) == await content(gateway, first["id"])
    assert await event_types(gateway, follower["id"]) == ["job.queued", "job.succeeded"]
    assert gateway.sandbox.stats.created_total == 1


async def test_followers_of_a_canceled_job_go_on_their_own(gateway: Served, png_uri: str) -> None:
    first = await create(gateway, seeded(png_uri))
    second = await create(gateway, seeded(png_uri))
    third = await create(gateway, seeded(png_uri))
    assert second["source_job_id"] == third["source_job_id"] == first["id"]

    canceled = await gateway.client.post(f"/v1/jobs/{first['id']}/cancel")
    assert canceled.json()["status"] == "canceled"
    released = await gateway.job(second["id"])
    assert released["status"] == "queued" and released["source_job_id"] is None
    assert (await gateway.job(third["id"]))["source_job_id"] == second["id"]  # now follows the next one

    done = await gateway.drive(second["id"], "succeeded")
    last = await gateway.job(third["id"])
    assert last["status"] == "succeeded" and last["cached"] is True
    assert last["result"]["sha256"] == done["result"]["sha256"]
    assert gateway.sandbox.stats.created_total == 1


async def test_followers_fail_with_their_job(gateway: Served, png_uri: str) -> None:
    doomed = seeded(png_uri, prompt="a cat [sandbox:FAILED/DataInspectionFailed]")
    first = await create(gateway, doomed)
    follower = await create(gateway, doomed)
    assert follower["source_job_id"] == first["id"]
    failed = await gateway.drive(first["id"], "failed")
    followed = await gateway.job(follower["id"])
    assert followed["status"] == "failed" and followed["error"] == failed["error"]
    assert followed["error"]["upstream_code"] == "DataInspectionFailed" and followed["cached"] is False
    assert gateway.sandbox.stats.created_total == 1


async def test_reuse_is_per_tenant_and_needs_the_stored_video(gateway: Served, png_uri: str) -> None:
    service = gateway.gateway.service
    request = JobCreate(**seeded(png_uri))
    original = (await service.submit(request, owner="a")).job

    async def succeeded() -> bool:
        await gateway.gateway.poller.run_once()
        return (await service.get(original.id, owner="a")).status == "succeeded"

    await wait_for(succeeded, within=60, what="tenant a's job to succeed")
    other = (await service.submit(request, owner="b")).job
    assert other.status == "queued" and other.source_job_id is None  # b never sees a's jobs
    reused = (await service.submit(request, owner="a")).job
    assert reused.cached and reused.source_job_id == original.id

    done = await service.get(original.id, owner="a")
    assert done.storage_key is not None
    await gateway.gateway.storage.delete(done.storage_key)  # e.g. removed by a bucket lifecycle rule
    regenerated = (await service.submit(request, owner="a")).job
    assert regenerated.status == "queued" and regenerated.source_job_id is None


async def test_operators_can_turn_reuse_off(tmp_path: Path, database_url: str, png_uri: str) -> None:
    async with serve(make_settings(tmp_path, database_url, result_cache=False)) as served:
        first = await create(served, seeded(png_uri))
        second = await create(served, seeded(png_uri))
        assert second["source_job_id"] is None
        await served.gateway.poller.run_once()
        assert {(await served.job(j["id"]))["status"] for j in (first, second)} <= {"submitted", "running"}
        assert served.sandbox.stats.created_total == 2
