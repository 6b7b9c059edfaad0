"""Several real processes on one database and one sandbox: an API with its loops off, worker processes,
kill -9 and SIGTERM in the middle of the work, and a flaky upstream. Every job must finish exactly once,
with exactly one upstream task, and every terminal webhook must arrive (verified with `standardwebhooks`).

These run in the Postgres pass only (the deployment they stand for, and CI's time budget); set
SCALEOUT_ON_SQLITE=1 to run them on SQLite too.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.tls import client_context
from tests.conftest import TEST_DATABASE_URL
from tests.helpers import data_uri, wait_for
from tests.processes import ADMIN_HEADERS, CLIENT_HEADERS, Cluster, cluster, showing_logs_on_failure
from tests.receiver import Receiver, receiver
from tests.s3 import Bucket

SECRET = "whsec_" + "c2NhbGUtb3V0LXRlc3Qtc2VjcmV0LTEyMzQ1Ng=="
TERMINAL = ("succeeded", "failed", "canceled")

#: Quick sandbox tasks, quick lease take-over, quick webhook retries; DashScope's real rate limits.
FAST = {
    "SANDBOX_PENDING_S": "0.2",
    "SANDBOX_RUNNING_S": "0.8",
    "POLL_MIN_INTERVAL_S": "0.1",
    "POLL_MAX_INTERVAL_S": "0.3",
    "LEASE_S": "3",
    "RECONCILE_GRACE_S": "1",
    "SHUTDOWN_GRACE_S": "5",
    "WEBHOOK_SECRET": SECRET,
    "ALLOW_PRIVATE_URLS": "true",
    "WEBHOOK_RETRY_SCHEDULE": "0,1,1,2,2,3,3,5,5,5",
    "WEBHOOK_TIMEOUT_S": "2",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not TEST_DATABASE_URL and not os.environ.get("SCALEOUT_ON_SQLITE"),
        reason="multi-process scale-out runs in the Postgres pass (SCALEOUT_ON_SQLITE=1 to run it here)",
    ),
]


async def submit_many(api: str, count: int, hook: Receiver, prefix: str) -> list[str]:
    png = data_uri(640, 360)
    async with httpx.AsyncClient(
        base_url=api, timeout=30, headers=CLIENT_HEADERS, verify=client_context()
    ) as client:
        ids = []
        for i in range(count):
            body = {
                "prompt": f"{prefix} {i}",
                "duration": 2,
                "size": "1280*720",
                "reference_image": png,
                "webhook_url": hook.url,
            }
            response = await client.post("/v1/jobs", json=body)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        return ids


async def statuses(api: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The jobs `ids` as the API shows them, read through the list (a page of 100 per request: one GET
    per job, twice a second for 100 jobs, was most of the API process's CPU)."""
    wanted = set(ids)
    found: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(
        base_url=api, timeout=30, headers=CLIENT_HEADERS, verify=client_context()
    ) as client:
        params = {"limit": "100"}
        while True:
            page = (await client.get("/v1/jobs", params=params)).raise_for_status().json()
            found.update((job["id"], job) for job in page["data"] if job["id"] in wanted)
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
    assert set(found) == wanted, f"jobs missing from the list: {sorted(wanted - set(found))}"
    return found


async def all_finished(api: str, ids: list[str], within: float) -> dict[str, dict[str, Any]]:
    async def finished() -> dict[str, dict[str, Any]] | None:
        jobs = await statuses(api, ids)
        return jobs if all(j["status"] in TERMINAL for j in jobs.values()) else None

    return await wait_for(finished, within=within, interval=0.5, what="every job to finish")


async def assert_each_job_once(running: Cluster, jobs: dict[str, dict[str, Any]], hook: Receiver) -> None:
    """Succeeded, one upstream task each and nothing more upstream, one verified terminal webhook each."""
    failed = {i: j["error"] for i, j in jobs.items() if j["status"] != "succeeded"}
    assert not failed, failed
    task_ids = [j["upstream"]["task_id"] for j in jobs.values()]
    assert len(set(task_ids)) == len(jobs), "two jobs share an upstream task"
    upstream = await running.upstream_tasks()
    assert sorted(t["task_id"] for t in upstream) == sorted(task_ids), "upstream holds extra tasks"

    async def delivered() -> bool:
        done = {r.verified["data"]["id"] for r in hook.requests if r.verified and r.status < 300}
        return done >= set(jobs)

    await wait_for(delivered, within=60, what="every terminal webhook")
    assert all(r.verified is not None for r in hook.requests), "a webhook failed signature verification"
    ids_per_job: dict[str, set[str]] = {}
    for request in hook.requests:
        assert request.verified is not None
        ids_per_job.setdefault(request.verified["data"]["id"], set()).add(request.webhook_id)
        assert request.type == "job.succeeded"
    assert all(len(v) == 1 for v in ids_per_job.values()), "an event was sent under two webhook-ids"


async def test_100_jobs_two_workers_one_killed(tmp_path: Path, database_url: str, s3_bucket: Bucket) -> None:
    """An API (loops off) and two workers share the database (Postgres in CI's second pass), one S3 bucket
    (a moto server) and DashScope's real limits (enforced by the sandbox). One worker is killed -9
    mid-run: its leases lapse and the other finishes its work."""
    storage = {"STORAGE_URL": f"s3://{s3_bucket.name}/videos", "S3_ENDPOINT_URL": s3_bucket.endpoint_url}
    async with (
        receiver(SECRET) as hook,
        cluster(tmp_path, database_url, **FAST, **storage) as running,
    ):
        with showing_logs_on_failure(running):
            await running.start_sandbox(SANDBOX_ENFORCE_LIMITS="true")
            _, api = await running.start_api()
            doomed, _ = await running.start_worker("worker-1")
            await running.start_worker("worker-2")
            ids = await submit_many(api, 100, hook, "scale")

            async def a_third_done() -> bool:
                jobs = await statuses(api, ids)
                return sum(1 for j in jobs.values() if j["status"] == "succeeded") >= 30

            await wait_for(a_third_done, within=120, interval=0.5, what="30 jobs to succeed")
            doomed.kill()
            jobs = await all_finished(api, ids, within=240)
            await assert_each_job_once(running, jobs, hook)
            stats = await running.sandbox_stats()
            assert stats["created_total"] == 100
            # Two workers drew on one shared budget: DashScope's limits were never exceeded.
            assert stats["responses"].get("429", 0) == 0, stats
            # Every video is in the bucket, whole, once; no multipart upload was left open.
            keys = await s3_bucket.keys()
            assert len(keys) == 100 and not await s3_bucket.pending_uploads()
            some = next(iter(jobs.values()))
            async with httpx.AsyncClient(
                base_url=api, timeout=30, headers=CLIENT_HEADERS, verify=client_context()
            ) as client:
                video = await client.get(f"/v1/jobs/{some['id']}/content", headers={"Range": "bytes=0-99"})
            assert video.status_code == 206 and len(video.content) == 100


async def test_flaky_upstream_every_job_once(tmp_path: Path, database_url: str) -> None:
    """30 % of upstream answers are 429, 500, 503 or a non-JSON 502 — some after the task was created."""
    faults = ",".join(
        f"{target}:{status}=0.075"
        for target in ("create", "get", "list")
        for status in ("429", "500", "503", "502")
    )
    async with (
        receiver(SECRET) as hook,
        cluster(tmp_path, database_url, **FAST) as running,
    ):
        with showing_logs_on_failure(running):
            await running.start_sandbox(
                SANDBOX_FAULTS=f"{faults},create_after:500=0.1", SANDBOX_FAULT_SEED="7"
            )
            _, api = await running.start_api()
            await running.start_worker("worker-1")
            await running.start_worker("worker-2")
            ids = await submit_many(api, 40, hook, "flaky")
            jobs = await all_finished(api, ids, within=240)
            stats = await running.sandbox_stats()
            await running.clear_faults()
            await assert_each_job_once(running, jobs, hook)
            assert stats["created_total"] == 40
            assert sum(stats["injected"].values()) > 10, stats  # the faults did happen


async def test_kill_9_after_the_create_before_the_task_id_is_saved(tmp_path: Path, database_url: str) -> None:
    """The worker dies while DashScope holds the create's answer: the task exists, the job has no task id.
    Another worker finds the task in DashScope's list and adopts it instead of creating a second one."""
    async with (
        receiver(SECRET) as hook,
        cluster(tmp_path, database_url, **FAST) as running,
    ):
        with showing_logs_on_failure(running):
            await running.start_sandbox(SANDBOX_FAULTS="create_after:slow/120*1")
            _, api = await running.start_api()
            doomed, _ = await running.start_worker("worker-1")
            [job_id] = await submit_many(api, 1, hook, "adopt")

            async def created_upstream() -> bool:
                stats = await running.sandbox_stats()
                return bool(stats["created_total"] == 1)

            await wait_for(created_upstream, within=60, what="the task to exist upstream")
            assert (await statuses(api, [job_id]))[job_id]["upstream"] is None  # no task id saved
            doomed.kill()
            await running.start_worker("worker-2")
            jobs = await all_finished(api, [job_id], within=120)
            await assert_each_job_once(running, jobs, hook)
            assert (await running.sandbox_stats())["created_total"] == 1


async def test_sigterm_drains_within_the_bound_and_nothing_is_lost(tmp_path: Path, database_url: str) -> None:
    async with (
        receiver(SECRET) as hook,
        cluster(tmp_path, database_url, **{**FAST, "SANDBOX_RUNNING_S": "3"}) as running,
    ):
        with showing_logs_on_failure(running):
            await running.start_sandbox()
            _, api = await running.start_api()
            worker, _ = await running.start_worker("worker-1")
            ids = await submit_many(api, 6, hook, "drain")

            async def some_upstream() -> bool:
                jobs = await statuses(api, ids)
                return any(j["status"] in ("submitted", "running") for j in jobs.values())

            await wait_for(some_upstream, within=60, what="a job to be upstream")
            started = time.monotonic()
            exit_code = await asyncio.to_thread(worker.terminate, 60)
            took = time.monotonic() - started
            assert exit_code == 0, worker.tail()
            # The drain is bounded by SHUTDOWN_GRACE_S (5 s); the rest is closing connections.
            assert took < 5 + 10, f"the worker took {took:.1f} s to stop"
            await running.start_worker("worker-2")
            jobs = await all_finished(api, ids, within=120)
            await assert_each_job_once(running, jobs, hook)


async def test_worker_health_port_reports_loops_and_queue(tmp_path: Path, database_url: str) -> None:
    """…and the metrics of the work it did, under the names the API's /metrics uses."""
    async with cluster(tmp_path, database_url, **FAST) as running, receiver(SECRET) as hook:
        with showing_logs_on_failure(running):
            await running.start_sandbox()
            _, api = await running.start_api()
            _, health = await running.start_worker("worker-1")
            async with httpx.AsyncClient(
                timeout=10, headers=ADMIN_HEADERS, verify=client_context()
            ) as client:
                ready = (await client.get(health + "/readyz")).json()
                assert ready["checks"]["job_poller"] == ready["checks"]["webhook_dispatcher"] == "ok"
                api_ready = (await client.get(api + "/readyz")).json()
                assert api_ready["checks"]["job_poller"] == "disabled"  # WORKERS_ENABLED=false
                metrics = (await client.get(health + "/metrics")).text
                assert 'wan_gateway_loop_heartbeat_age_seconds{loop="job_poller"}' in metrics

                jobs = await all_finished(api, await submit_many(api, 1, hook, "counted"), within=60)
                await assert_each_job_once(running, jobs, hook)
                [model] = {job["model"] for job in jobs.values()}
                metrics = (await client.get(health + "/metrics")).text
                lines = metrics.splitlines()
                labels = f'error_code="none",model="{model}",status="succeeded"'
                finished = f"wan_gateway_jobs_finished_total{{{labels}}} 1.0"
                assert finished in lines, metrics
                assert 'wan_gateway_webhook_attempts_total{outcome="ok"} 1.0' in lines, metrics
                assert 'wan_gateway_upstream_calls_total{operation="create",outcome="ok"} 1.0' in lines
                api_metrics = (await client.get(api + "/metrics")).text

                def families(text: str) -> set[str]:
                    return {line.split()[2] for line in text.splitlines() if line.startswith("# HELP")}

                assert families(metrics) == families(api_metrics)  # one set of names, every process
