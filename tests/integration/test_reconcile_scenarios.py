"""Ambiguous creates, end to end against the sandbox: a stranger's task is never adopted, a late task is
found rather than paid for twice, a failed lookup is not taken for "no task", and deadlines never
throw away work upstream already finished."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.db.base import utcnow
from app.jobs.models import Job
from tests.conftest import Served, make_settings, serve
from tests.helpers import wait_for

PROMPT = "a cat on a skateboard"


async def stored_job(served: Served, job_id: str) -> Job:
    async with served.gateway.sessions() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


async def test_a_strangers_task_in_the_window_is_never_adopted(gateway: Served, png_uri: str) -> None:
    """Another user of the account creates a task just as our create fails without creating one."""
    job_id = await gateway.submit(png_uri, prompt=PROMPT)
    body = (await stored_job(gateway, job_id)).upstream_body or {}
    stranger = {**body, "input": {**body["input"], "prompt": "someone else's dog"}}
    foreign = await gateway.gateway.provider.submit(stranger)
    gateway.sandbox.faults.add("create:500*1")

    done = await gateway.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded"
    assert done["upstream"]["task_id"] != foreign.task_id
    assert done["upstream"]["orig_prompt"] == PROMPT
    assert gateway.sandbox.stats.created_total == 2  # the stranger's and ours, nothing more


@pytest.fixture
async def short_timeout(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    async with serve(make_settings(tmp_path, database_url, upstream_read_timeout_s=0.5)) as served:
        yield served


async def test_a_create_that_timed_out_is_found_not_sent_again(short_timeout: Served, png_uri: str) -> None:
    """The service created the task but answered after our client gave up: no request id to go by."""
    short_timeout.sandbox.faults.add("create_after:slow/1.5*1")
    job_id = await short_timeout.submit(png_uri, prompt=PROMPT)
    done = await short_timeout.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded"
    stats = short_timeout.sandbox.stats
    assert stats.created_total == 1 and stats.creates == 1


async def test_a_failed_lookup_is_not_taken_for_no_task(gateway: Served, png_uri: str) -> None:
    """A proxy error page (no request id) hides a created task; reading candidates then fails a while."""
    gateway.sandbox.faults.add("create_after:502*1", "get:429*4")
    job_id = await gateway.submit(png_uri, prompt=PROMPT)
    done = await gateway.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded"
    assert gateway.sandbox.stats.created_total == 1


@pytest.fixture
async def two_second_deadline(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    async with serve(make_settings(tmp_path, database_url, job_deadline_s=2.0)) as served:
        yield served


async def test_work_finished_upstream_is_kept_even_past_the_deadline(
    two_second_deadline: Served, png_uri: str
) -> None:
    served = two_second_deadline
    job_id = await served.submit(png_uri, prompt=PROMPT)
    await served.gateway.poller.run_once()  # submitted
    job = await stored_job(served, job_id)
    assert job.task_id is not None
    deadline: datetime = job.deadline_at
    provider = served.gateway.provider

    async def upstream_done_and_deadline_passed() -> bool:
        task = await provider.get(job.task_id or "")
        return task.state.value == "SUCCEEDED" and utcnow() > deadline

    await wait_for(upstream_done_and_deadline_passed, within=30)
    done = await served.drive(job_id, "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]


@pytest.fixture
async def pending_forever(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    async with serve(make_settings(tmp_path, database_url, sandbox_pending_s=120)) as served:
        yield served


async def test_a_task_still_pending_at_the_deadline_is_canceled_upstream(
    pending_forever: Served, png_uri: str
) -> None:
    job_id = await pending_forever.submit(png_uri, prompt=PROMPT)
    await pending_forever.gateway.poller.run_once()  # submitted: the task is pending upstream
    assert (await stored_job(pending_forever, job_id)).task_id is not None
    # The deadline passes while the task is still pending. It is moved in the row rather than waited for
    # (a 1 s JOB_DEADLINE_S raced the submission itself on a loaded machine).
    async with pending_forever.gateway.sessions.begin() as session:
        await session.execute(
            update(Job).where(Job.id == job_id).values(deadline_at=utcnow() - timedelta(seconds=1))
        )
    done = await pending_forever.drive(job_id, "failed", "succeeded")
    assert done["error"]["code"] == "deadline_exceeded"
    task = await pending_forever.gateway.provider.get(done["upstream"]["task_id"])
    assert task.state.value == "CANCELED"  # nothing left running (or billed) upstream


@pytest.fixture
async def one_second_deadline(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    async with serve(make_settings(tmp_path, database_url, job_deadline_s=1.0)) as served:
        yield served


async def test_an_unconfirmable_create_ends_at_the_deadline_without_a_resend(
    one_second_deadline: Served, png_uri: str
) -> None:
    """The task list itself is refused: the create's outcome stays unknown, the family's slot is freed."""
    one_second_deadline.sandbox.faults.add("create:500*1", "list:403/AccessDenied")
    job_id = await one_second_deadline.submit(png_uri, prompt=PROMPT)
    done = await one_second_deadline.drive(job_id, "failed", "succeeded")
    assert done["error"]["code"] == "create_outcome_unknown"
    assert one_second_deadline.sandbox.stats.creates == 1
