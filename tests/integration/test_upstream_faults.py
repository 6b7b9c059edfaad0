"""Each upstream error class, injected into the sandbox: transient ones are retried without ever creating
a second billable task; permanent ones and failed tasks end the job with a clear code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from app.db.base import utcnow
from app.jobs import repository
from app.jobs.models import Job
from tests.conftest import Served, make_settings, serve
from tests.helpers import data_uri


@pytest.mark.parametrize("fault", ["create:429*2", "create:503/ModelUnavailable*1"])
async def test_refused_creates_are_retried_and_make_one_task(
    gateway: Served, png_uri: str, fault: str
) -> None:
    gateway.sandbox.faults.add(fault)
    job_id = await gateway.submit(png_uri)
    done = await gateway.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded"
    assert gateway.sandbox.stats.created_total == 1


async def test_create_that_succeeded_behind_a_500_is_reconciled_not_resent(
    gateway: Served, png_uri: str
) -> None:
    """The dangerous case: upstream created the task, then answered 500."""
    gateway.sandbox.faults.add("create_after:500*1")
    job_id = await gateway.submit(png_uri)
    done = await gateway.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded"
    stats = gateway.sandbox.stats
    assert stats.created_total == 1
    assert stats.creates == 1  # never sent again
    assert stats.lists >= 1  # found through the task list
    assert done["upstream"]["task_id"] in {
        t.task_id
        for t in await gateway.gateway.provider.list_tasks(
            "wan2.6-i2v-flash", utcnow().replace(year=2000), utcnow()
        )
    }


@pytest.mark.parametrize("fault", ["create:500*1", "create:502*1", "create:drop*1"])
async def test_ambiguous_create_with_no_task_upstream_is_resent_once(
    gateway: Served, png_uri: str, fault: str
) -> None:
    gateway.sandbox.faults.add(fault)
    job_id = await gateway.submit(png_uri)
    done = await gateway.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded"
    stats = gateway.sandbox.stats
    assert stats.created_total == 1 and stats.creates == 2 and stats.lists >= 1


async def test_crash_after_create_before_the_task_id_is_saved(gateway: Served, png_uri: str) -> None:
    """Replays the database state such a crash leaves: attempt recorded, task created, id never saved."""
    job_id = await gateway.submit(png_uri)
    gw = gateway.gateway
    now = utcnow()
    async with gw.sessions.begin() as session:
        [job] = await repository.claim_for_submit(session, "wan2.6", 1, "dead-worker", now, now)
    await gw.provider.submit(job.upstream_body or {})  # the create reaches upstream; then the process dies
    async with gw.sessions.begin() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=now))

    done = await gateway.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded"
    assert gateway.sandbox.stats.created_total == 1


@pytest.mark.parametrize(
    "fault", ["get:502*2", "get:500*1", "get:429*1", "get:503*1", "get:drop*1", "download:500*2"]
)
async def test_transient_query_and_download_faults_are_retried(
    gateway: Served, png_uri: str, fault: str
) -> None:
    gateway.sandbox.faults.add(fault)
    job_id = await gateway.submit(png_uri)
    done = await gateway.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded"
    assert gateway.sandbox.stats.created_total == 1


async def test_permanent_create_error_fails_the_job_with_the_upstream_code(
    gateway: Served, png_uri: str
) -> None:
    gateway.sandbox.faults.add("create:400/DataInspectionFailed*1")
    job_id = await gateway.submit(png_uri)
    done = await gateway.drive(job_id, "failed", "succeeded")
    assert done["status"] == "failed"
    assert done["error"]["code"] == "upstream_rejected"
    assert done["error"]["upstream_code"] == "DataInspectionFailed"
    assert gateway.sandbox.stats.creates == 1  # a 4xx is never retried


async def test_failed_task_carries_upstream_code_and_message(gateway: Served, png_uri: str) -> None:
    job_id = await gateway.submit(png_uri, prompt="a cat [sandbox:FAILED/DataInspectionFailed]")
    done = await gateway.drive(job_id, "failed", "succeeded")
    assert done["error"]["code"] == "upstream_failed"
    assert done["error"]["upstream_code"] == "DataInspectionFailed"
    assert done["error"]["message"]
    assert done["result"] is None


async def test_unknown_task_ends_the_job(gateway: Served, png_uri: str) -> None:
    job_id = await gateway.submit(png_uri, prompt="a cat [sandbox:UNKNOWN]")
    done = await gateway.drive(job_id, "failed", "succeeded")
    assert done["error"]["code"] == "upstream_task_unknown"


@pytest.fixture
async def short_deadline(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    async with serve(make_settings(tmp_path, database_url, job_deadline_s=1.0)) as served:
        yield served


async def test_stuck_task_fails_at_the_deadline(short_deadline: Served, png_uri: str) -> None:
    job_id = await short_deadline.submit(png_uri, prompt="a cat [sandbox:stuck]")
    done = await short_deadline.drive(job_id, "failed", "succeeded")
    assert done["error"]["code"] == "deadline_exceeded"


async def test_task_on_a_revoked_key_fails_clearly_at_the_deadline(tmp_path: Path, database_url: str) -> None:
    """The key is revoked once the task exists: its polls are refused, retried (saying why), and at the
    deadline the job fails naming the refusal rather than retrying past it."""
    async with serve(make_settings(tmp_path, database_url, job_deadline_s=3.0)) as served:
        job_id = await served.submit(data_uri(640, 360), prompt="a cat [sandbox:stuck]")
        await served.drive(job_id, "submitted", "running")
        sandbox = served.sandbox
        async with httpx.AsyncClient(base_url=sandbox.public_url, timeout=10) as upstream:
            answer = await upstream.post(
                "/_sandbox/accounts",
                json={"account": "1", "revoked": True},
                headers={"Authorization": f"Bearer {sandbox.config.api_keys[0]}"},
            )
        assert answer.status_code == 200, answer.text
        done = await served.drive(job_id, "failed", "succeeded")
        assert done["error"]["code"] == "upstream_account_refused", done["error"]
        assert done["error"]["upstream_code"] == "InvalidApiKey", done["error"]


@pytest.fixture
async def expiring_urls(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    async with serve(make_settings(tmp_path, database_url, sandbox_video_ttl_s=2.0)) as served:
        yield served


async def test_copy_retried_until_the_video_url_expires(
    expiring_urls: Served, png_uri: str, tmp_path: Path
) -> None:
    expiring_urls.sandbox.faults.add("download:503")  # every download fails, transiently
    job_id = await expiring_urls.submit(png_uri)
    done = await expiring_urls.drive(job_id, "failed", "succeeded")
    assert done["error"]["code"] == "video_url_expired"
    assert expiring_urls.sandbox.stats.downloads >= 2  # retried while the URL was valid
    videos = tmp_path / "output" / "ai-video-wan-video" / "videos"
    assert [p for p in videos.rglob("*") if p.is_file()] == []  # nothing half-written left


@pytest.fixture
async def one_slot(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    settings = make_settings(tmp_path, database_url, upstream_max_inflight="wan2.6=1", sandbox_running_s=1.0)
    async with serve(settings) as served:
        yield served


async def test_in_flight_cap_and_fifo_order(one_slot: Served, png_uri: str) -> None:
    ids = [await one_slot.submit(png_uri, prompt=f"job {i}") for i in range(3)]
    await one_slot.gateway.poller.run_once()
    statuses = [(await one_slot.job(i))["status"] for i in ids]
    assert statuses == ["submitted", "queued", "queued"]  # one slot, oldest first
    await one_slot.drive(ids[0], "succeeded")
    await one_slot.drive(ids[1], "submitted", "running", "storing", "succeeded")
    assert (await one_slot.job(ids[2]))["status"] == "queued"
    for job_id in ids[1:]:
        await one_slot.drive(job_id, "succeeded")


async def test_a_dead_video_url_is_refreshed_from_the_task(gateway: Served, png_uri: str) -> None:
    """After a restart the embedded sandbox listens elsewhere: a stored URL can point at nothing while
    the task still offers a working one. The copy fails transiently, the URL is re-read, the job ends."""
    job_id = await gateway.submit(png_uri)
    gateway.sandbox.faults.add("download:503")  # every copy fails: the job waits in storing
    await gateway.drive(job_id, "storing")
    dead = "http://127.0.0.1:9/dead.mp4?Expires=4102444800"
    gw = gateway.gateway
    async with gw.sessions.begin() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(video_source_url=dead))
    gateway.sandbox.faults.clear()

    done = await gateway.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    async with gw.sessions() as session:
        job = await session.get(Job, job_id)
    assert job is not None and job.video_source_url != dead
