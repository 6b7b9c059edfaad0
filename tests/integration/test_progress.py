"""Honest progress: queue positions in claim order with ETAs, progress that follows the clock while
running and the copy while storing, and run times learnt from the database by any process.

The job loop is driven with `run_once()`; the API's estimates run on an injected clock.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from app.jobs.estimates import Estimator
from app.jobs.models import Job
from app.jobs.states import JobStatus
from tests.conftest import make_settings, serve

TYPICAL_2S = 60 + 12 * 2  # pacing.typical_run_s for a 2-second video


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_queue_positions_eta_and_progress(tmp_path: Path, database_url: str, png_uri: str) -> None:
    # One upstream slot for the family, so jobs wait in its queue.
    settings = make_settings(tmp_path, database_url, upstream_max_inflight={"wan2.6": 1})
    async with serve(settings) as served:
        estimates = served.gateway.service.estimates
        ids = [await served.submit(png_uri, seed=7)] + [await served.submit(png_uri) for _ in range(2)]
        # The same seeded request again: it follows the first job rather than being sent itself.
        follower = await served.submit(png_uri, seed=7)
        assert (await served.job(follower))["source_job_id"] == ids[0]

        async def rows() -> dict[str, Job]:
            async with served.gateway.sessions() as session:
                found = await session.scalars(select(Job).where(Job.id.in_(ids)))
                return {job.id: job for job in found}

        async def shown() -> dict[str, dict[str, Any]]:
            listed = (await served.client.get("/v1/jobs")).json()["data"]
            return {job["id"]: job for job in listed if job["id"] in ids}

        # Queued: 1..3 in submit order (one tenant: FIFO), each ETA one typical run after the one ahead.
        jobs = await shown()
        assert [jobs[i]["queue_position"] for i in ids] == [1, 2, 3]
        assert [jobs[i]["progress"] for i in ids] == [0, 0, 0]
        etas = [at(jobs[i]["eta"]) for i in ids]
        assert [round((b - a).total_seconds()) for a, b in itertools.pairwise(etas)] == [TYPICAL_2S] * 2

        # The poller takes the first in line: the one at position 1.
        await served.gateway.poller.run_once()
        first, second, third = ids
        submitted_at = (await rows())[first].submitted_at
        assert submitted_at is not None
        jobs = await shown()
        assert jobs[first]["status"] == "submitted" and jobs[first]["queue_position"] is None
        assert (jobs[second]["queue_position"], jobs[third]["queue_position"]) == (1, 2)

        # Running: elapsed against the expected run, on the injected clock; never 100 before it is stored.
        seen = []
        for elapsed in (0, TYPICAL_2S / 2, TYPICAL_2S, 10 * TYPICAL_2S):
            estimates.clock = lambda elapsed=elapsed: submitted_at + timedelta(seconds=elapsed)  # type: ignore[misc]
            job = await served.job(first)
            openai = (await served.client.get(f"/v1/videos/{first}")).json()
            assert openai["progress"] == job["progress"]  # the OpenAI projection shows the same number
            seen.append(job["progress"])
            follows = await served.job(follower)  # shows the progress and ETA of the job it follows
            assert (follows["progress"], follows["eta"], follows["queue_position"]) == (
                job["progress"],
                job["eta"],
                None,
            )
            if elapsed < TYPICAL_2S:
                assert at(job["eta"]) == (submitted_at + timedelta(seconds=TYPICAL_2S)).replace(microsecond=0)
        assert seen == [0, 45, 90, 90]
        assert (await served.job(first))["eta"] is None  # late: unknown, not a time in the past
        # The next in line starts when the slot frees (the running job's expected end), then runs as long.
        estimates.clock = lambda: submitted_at
        queued = await served.job(second)
        assert at(queued["eta"]) == (submitted_at + timedelta(seconds=2 * TYPICAL_2S)).replace(microsecond=0)

        # Stored: the copying worker recorded its progress in the row as it went.
        done = await served.drive(first, "succeeded")
        assert done["progress"] == 100 and done["eta"] is None and done["queue_position"] is None
        row = (await rows())[first]
        assert row.copy_bytes == row.copy_total_bytes == done["result"]["bytes"]

        # Another process reads the learnt run time from the database: the first job's submit-to-stored.
        now = row.finished_at
        assert now is not None
        learnt = (now - submitted_at).total_seconds()
        assert learnt < TYPICAL_2S / 10
        other = Estimator(served.gateway.sessions, max_inflight={"wan2.6": 1}, clock=lambda: now)
        live = await other.live(list((await rows()).values()))
        assert (live[second].queue_position, live[third].queue_position) == (1, 2)
        second_eta, third_eta = live[second].eta, live[third].eta
        assert second_eta is not None and third_eta is not None
        assert abs((third_eta - second_eta).total_seconds() - learnt) <= 1

        # Storing: the bytes copied so far, past the running share and below 100. (The row is set as the
        # copying worker leaves it mid-copy: a real copy of a sandbox clip is over within milliseconds.)
        async with served.gateway.sessions.begin() as session:
            await session.execute(
                update(Job)
                .where(Job.id == third)
                .values(status=JobStatus.STORING, copy_bytes=500_000, copy_total_bytes=1_000_000)
            )
        assert (await served.job(third))["progress"] == 94
