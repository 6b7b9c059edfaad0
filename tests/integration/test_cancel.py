"""Cancel: locally before submission, upstream while PENDING, refused (409) once running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Served, make_settings, serve


@pytest.fixture
async def slow_gateway(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    """Tasks stay PENDING for a long time: a job can be caught while still cancelable upstream."""
    async with serve(make_settings(tmp_path, database_url, sandbox_pending_s=60)) as served:
        yield served


@pytest.fixture
async def running_gateway(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    async with serve(
        make_settings(tmp_path, database_url, sandbox_pending_s=0.01, sandbox_running_s=60)
    ) as served:
        yield served


async def test_queued_job_is_canceled_locally_and_never_submitted(gateway: Served, png_uri: str) -> None:
    job = (await gateway.client.post("/v1/jobs", json={"prompt": "p", "reference_image": png_uri})).json()
    response = await gateway.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert await gateway.gateway.poller.run_once() == 0
    assert gateway.gateway.sandbox is not None and gateway.gateway.sandbox.stats.upstream_calls == 0
    again = await gateway.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "canceled"


async def test_pending_task_is_canceled_upstream(slow_gateway: Served, png_uri: str) -> None:
    job = (
        await slow_gateway.client.post("/v1/jobs", json={"prompt": "p", "reference_image": png_uri})
    ).json()
    await slow_gateway.drive(job["id"], "submitted")
    response = await slow_gateway.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "canceled" and body["upstream"]["status"] == "CANCELED"
    sandbox = slow_gateway.gateway.sandbox
    assert sandbox is not None and sandbox.stats.cancels == 1
    # Upstream agrees: the task itself is CANCELED.
    task = await slow_gateway.gateway.provider.get(body["upstream"]["task_id"])
    assert task.state.value == "CANCELED"


async def test_running_task_cannot_be_canceled(running_gateway: Served, png_uri: str) -> None:
    job = (
        await running_gateway.client.post("/v1/jobs", json={"prompt": "p", "reference_image": png_uri})
    ).json()
    await running_gateway.drive(job["id"], "running")
    response = await running_gateway.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "not_cancelable" and "PENDING" in problem["detail"]
    assert (await running_gateway.job(job["id"]))["status"] == "running"


async def test_finished_job_cannot_be_canceled(gateway: Served, png_uri: str) -> None:
    job = (
        await gateway.client.post(
            "/v1/jobs", json={"prompt": "p", "duration": 2, "size": "1280*720", "reference_image": png_uri}
        )
    ).json()
    await gateway.drive(job["id"], "succeeded")
    response = await gateway.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409 and response.json()["code"] == "job_finished"
