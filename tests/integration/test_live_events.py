"""Clients learn of changes without polling: server-sent events (with replay) and `Prefer: wait`."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Served, make_settings, serve


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    """The job loop runs by itself here, as in production: the stream must follow it live."""
    settings = make_settings(
        tmp_path,
        database_url,
        workers_enabled=True,
        sandbox_pending_s=0.3,
        sandbox_running_s=1.5,  # long enough that a loaded machine still polls the task while RUNNING
        sse_keepalive_s=0.2,
        sse_progress_interval_s=0.1,
        change_poll_interval_s=5.0,  # long: events must arrive through the in-process feed, not polling
    )
    async with serve(settings) as served:
        yield served


async def read_stream(
    served: Served, job_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every SSE block until the server closes the stream: events and comment lines."""
    blocks: list[dict[str, Any]] = []
    async with served.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        block: dict[str, Any] = {"at": time.monotonic()}
        async for line in response.aiter_lines():
            if line == "":
                if len(block) > 1:
                    blocks.append(block)
                block = {"at": time.monotonic()}
            elif line.startswith(":"):
                block.setdefault("comment", line[1:].strip())
            else:
                name, _, value = line.partition(":")
                block[name] = value.strip()
    return blocks


async def test_stream_shows_every_status_change_live_then_closes(live: Served, png_uri: str) -> None:
    job_id = await live.submit(png_uri)
    blocks = await asyncio.wait_for(read_stream(live, job_id), 60)
    events = [b for b in blocks if "event" in b and b["event"] != "job.progress"]
    assert [e["event"] for e in events] == [
        "job.queued",
        "job.submitted",
        "job.running",
        "job.storing",
        "job.succeeded",
    ]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)
    payload = json.loads(events[-1]["data"])
    assert payload["type"] == "job.succeeded" and payload["data"]["status"] == "succeeded"
    assert payload["data"]["result"]["width"] == 1280
    assert any("comment" in b for b in blocks), "keep-alive comments while nothing happens"
    # Live, not batched at the end: the changes arrived spread over the job's run.
    assert events[-1]["at"] - events[0]["at"] > 0.5
    # Between status events, ephemeral progress events: no id (a resume never skips a status), the job
    # as GET shows it then, each one different from the one before, none after the end.
    kinds = [b.get("event") for b in blocks if "event" in b]
    progress = [b for b in blocks if b.get("event") == "job.progress"]
    assert progress and all("id" not in b for b in progress)
    assert kinds.index("job.progress") > kinds.index("job.queued")
    assert kinds[-1] == "job.succeeded"
    shown = [json.loads(b["data"]) for b in progress]
    assert all(p["type"] == "job.progress" and p["data"]["id"] == job_id for p in shown)
    views = [(p["data"]["progress"], p["data"]["queue_position"], p["data"]["eta"]) for p in shown]
    assert all(a != b for a, b in itertools.pairwise(views))
    assert {p["data"]["status"] for p in shown} <= {"queued", "submitted", "running", "storing"}
    assert all(0 <= p["data"]["progress"] < 100 for p in shown)


async def test_reconnect_with_last_event_id_replays_only_what_was_missed(live: Served, png_uri: str) -> None:
    job_id = await live.submit(png_uri)
    everything = [
        b for b in await asyncio.wait_for(read_stream(live, job_id), 60) if "id" in b and "event" in b
    ]
    running = next(b for b in everything if b["event"] == "job.running")
    resumed = [b for b in await read_stream(live, job_id, {"Last-Event-ID": running["id"]}) if "id" in b]
    assert [b["event"] for b in resumed] == ["job.storing", "job.succeeded"]
    assert [b["data"] for b in resumed] == [b["data"] for b in everything[-2:]]
    # Resuming after the terminal event: nothing to send, the stream ends at once.
    assert [
        b for b in await read_stream(live, job_id, {"Last-Event-ID": everything[-1]["id"]}) if "event" in b
    ] == []


async def test_bad_last_event_id_and_unknown_job(gateway: Served, png_uri: str) -> None:
    job_id = await gateway.submit(png_uri)
    response = await gateway.client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 422 and response.json()["field"] == "Last-Event-ID"
    assert (await gateway.client.get("/v1/jobs/job_nope/events")).status_code == 404


async def test_prefer_wait_returns_as_soon_as_the_status_changes(live: Served, png_uri: str) -> None:
    job_id = await live.submit(png_uri)
    seen = "queued"
    statuses = []
    while seen not in ("succeeded", "failed"):
        started = time.monotonic()
        response = await live.client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=30"})
        assert response.status_code == 200
        assert response.headers["preference-applied"] == "wait=30"
        assert time.monotonic() - started < 10, "answered on the change, not at the end of the wait"
        seen = response.json()["status"]
        statuses.append(seen)
    assert statuses[-1] == "succeeded" and len(statuses) >= 2


async def test_prefer_wait_times_out_with_the_job_unchanged(gateway: Served, png_uri: str) -> None:
    job_id = await gateway.submit(png_uri)  # the loop is off: nothing will happen
    started = time.monotonic()
    response = await gateway.client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "respond-async, wait=1"})
    elapsed = time.monotonic() - started
    assert response.json()["status"] == "queued"
    assert 1.0 <= elapsed < 5
    capped = await gateway.client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=0"})
    assert capped.headers["preference-applied"] == "wait=0"
