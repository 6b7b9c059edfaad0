"""Task lifecycle over HTTP: states and shapes, cancel, list, restarts, shared state, limits, outcomes."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.sandbox import clips
from app.sandbox.config import SandboxConfig
from app.sandbox.server import SandboxServer
from tests.helpers import wait_for
from tests.sandbox.sandbox_helpers import ASYNC, I2V_PATH, body_for, client_for, create, task, wait_status

TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
CANCEL_REFUSED = "Failed to cancel the task, please confirm if the task is in PENDING status."


def _parse(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


async def test_pending_running_succeeded(make_config: Callable[..., SandboxConfig]) -> None:
    async with (
        SandboxServer(make_config(pending_s=0.3, running_s=0.3)) as server,
        client_for(server) as client,
    ):
        before = time.time()
        task_id = await create(client, "wan2.2-i2v-flash", prompt_extend=True)
        pending = (await task(client, task_id))["output"]
        assert pending == {
            "task_id": task_id,
            "task_status": "PENDING",
            "submit_time": pending["submit_time"],
        }
        assert TIME.match(pending["submit_time"])
        assert abs(_parse(pending["submit_time"]) - before) < 2  # UTC

        running = (await wait_status(client, task_id, "RUNNING"))["output"]
        assert set(running) == {"task_id", "task_status", "submit_time", "scheduled_time"}
        assert _parse(running["scheduled_time"]) - _parse(running["submit_time"]) == pytest.approx(
            0.3, abs=0.01
        )

        done = await wait_status(client, task_id, "SUCCEEDED")
        output = done["output"]
        assert set(output) == {
            "task_id",
            "task_status",
            "submit_time",
            "scheduled_time",
            "end_time",
            "orig_prompt",
            "actual_prompt",
            "video_url",
        }
        assert _parse(output["end_time"]) >= _parse(output["scheduled_time"]) + 0.29
        assert output["orig_prompt"] == "a cat running"
        assert output["actual_prompt"].startswith("a cat running")
        assert re.match(
            rf"^{re.escape(server.public_url)}/files/{task_id}\.mp4\?.*Expires=\d+", output["video_url"]
        )
        assert done["usage"] == {"duration": 5, "SR": 720, "video_count": 1}

        (row,) = (await client.get("/tasks", params={"status": "SUCCEEDED"})).json()["data"]
        assert row["gmt_create"] < row["start_time"] < row["end_time"]
        assert row["end_time"] == int(_parse(output["end_time"]) * 1000)


@pytest.mark.parametrize(
    ("model", "parameters", "actual_prompt"),
    [
        ("wan2.2-i2v-flash", {"prompt_extend": False}, False),
        ("wan2.6-i2v-flash", {"resolution": "720P", "audio": False}, False),  # never for wan2.6
        ("wan2.2-kf2v-flash", {"resolution": "720P"}, True),
    ],
)
async def test_actual_prompt(
    client: httpx.AsyncClient, model: str, parameters: dict[str, Any], actual_prompt: bool
) -> None:
    done = await wait_status(client, await create(client, model, **parameters), "SUCCEEDED")
    assert ("actual_prompt" in done["output"]) is actual_prompt


async def test_unknown_task_id(client: httpx.AsyncClient) -> None:
    body = await task(client, "no-such-task")
    assert body["output"] == {"task_id": "no-such-task", "task_status": "UNKNOWN"}
    assert len(body["request_id"]) == 36


async def test_tasks_expire_into_unknown(make_config: Callable[..., SandboxConfig]) -> None:
    async with SandboxServer(make_config(task_ttl_s=0.3)) as server, client_for(server) as client:
        task_id = await create(client)
        await wait_status(client, task_id, "UNKNOWN")
        assert (await client.get("/tasks")).json()["total"] == 0
        response = await client.post(f"/tasks/{task_id}/cancel")
        assert response.status_code == 400


async def test_cancel_pending_only(make_config: Callable[..., SandboxConfig]) -> None:
    async with (
        SandboxServer(make_config(pending_s=0.5, running_s=0.5)) as server,
        client_for(server) as client,
    ):
        task_id = await create(client)
        response = await client.post(f"/tasks/{task_id}/cancel")
        assert response.status_code == 200
        assert set(response.json()) == {"request_id"}
        output = (await task(client, task_id))["output"]
        assert output["task_status"] == "CANCELED"
        assert "scheduled_time" not in output
        assert TIME.match(output["end_time"])

        again = await client.post(f"/tasks/{task_id}/cancel")
        assert again.status_code == 400
        assert again.json()["code"] == "UnsupportedOperation"

        running_id = await create(client)
        await wait_status(client, running_id, "RUNNING")
        refused = await client.post(f"/tasks/{running_id}/cancel")
        assert refused.status_code == 400
        assert refused.json() == {**refused.json(), "code": "UnsupportedOperation", "message": CANCEL_REFUSED}
        assert (await wait_status(client, running_id))["output"]["task_status"] == "SUCCEEDED"

        unknown = await client.post("/tasks/nope/cancel")
        assert (unknown.status_code, unknown.json()["message"]) == (400, CANCEL_REFUSED)


# --- list --------------------------------------------------------------------------------------------


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y%m%d%H%M%S")


async def test_list_rows_filters_and_pages(make_config: Callable[..., SandboxConfig]) -> None:
    async with SandboxServer(make_config(pending_s=30)) as server, client_for(server) as client:
        await _list_rows_filters_and_pages(client)


async def _list_rows_filters_and_pages(client: httpx.AsyncClient) -> None:
    ids = [await create(client, "wan2.2-i2v-flash") for _ in range(4)]
    kf2v = await create(client, "wan2.2-kf2v-flash")
    await client.post(f"/tasks/{ids[0]}/cancel")

    everything = (await client.get("/tasks")).json()
    assert (
        everything["total"],
        everything["total_page"],
        everything["page_no"],
        everything["page_size"],
    ) == (5, 1, 1, 10)
    assert [row["task_id"] for row in everything["data"]] == [kf2v, *reversed(ids)]  # newest first
    row = everything["data"][0]
    assert row["user_api_unique_key"] == "apikey:v1:aigc:image2video:video-synthesis:wan2.2-kf2v-flash"
    assert {
        "gmt_create",
        "start_time",
        "request_id",
        "region",
        "api_key_id",
        "caller_uid",
        "caller_parent_id",
    } <= set(row)
    assert isinstance(row["gmt_create"], int)
    assert row["gmt_create"] > 1_600_000_000_000
    assert "end_time" not in row  # not finished yet

    pages = [(await client.get("/tasks", params={"page_size": 2, "page_no": n})).json() for n in (1, 2, 3)]
    assert [len(page["data"]) for page in pages] == [2, 2, 1]
    assert {page["total_page"] for page in pages} == {3}
    assert [r["task_id"] for page in pages for r in page["data"]] == [
        r["task_id"] for r in everything["data"]
    ]

    by_model = (await client.get("/tasks", params={"model_name": "wan2.2-kf2v-flash"})).json()
    assert [r["task_id"] for r in by_model["data"]] == [kf2v]
    canceled = (await client.get("/tasks", params={"status": "CANCELED"})).json()
    assert [r["task_id"] for r in canceled["data"]] == [ids[0]]
    assert "end_time" in canceled["data"][0]
    by_id = (await client.get("/tasks", params={"task_id": ids[2]})).json()
    assert [r["task_id"] for r in by_id["data"]] == [ids[2]]

    now = time.time()
    window = {"start_time": _stamp(now - 3600), "end_time": _stamp(now + 60)}
    assert (await client.get("/tasks", params=window)).json()["total"] == 5
    assert (await client.get("/tasks", params={"end_time": _stamp(now - 3600)})).json()["total"] == 0
    assert (await client.get("/tasks", params={"start_time": _stamp(now - 7200)})).json()["total"] == 5


@pytest.mark.parametrize(
    "params",
    [
        {"start_time": "2025-09-01"},
        {"end_time": "20250931000000"},
        {"start_time": "20250901000000", "end_time": "20250903000000"},
        {"start_time": "20250903000000", "end_time": "20250901000000"},
        {"page_no": "0"},
        {"page_size": "abc"},
    ],
)
async def test_list_rejects_bad_queries(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get("/tasks", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameter"


# --- persistence and sharing -------------------------------------------------------------------------


async def test_tasks_survive_a_restart(make_config: Callable[..., SandboxConfig]) -> None:
    config = make_config(pending_s=0.3, running_s=0.2)
    async with SandboxServer(config) as first, client_for(first) as client:
        task_id = await create(client)
        port = first.port
    # The sandbox is down while the task would have run; its state is computed from stored times.
    async with (
        SandboxServer(make_config(pending_s=0.3, running_s=0.2, port=port)) as second,
        client_for(second) as client,
    ):
        assert second.port == port
        done = await wait_status(client, task_id, "SUCCEEDED")
        assert (await client.get(done["output"]["video_url"])).status_code == 200
        assert (await client.get("/tasks")).json()["data"][0]["task_id"] == task_id


async def test_two_servers_on_one_state_file_are_one_upstream(
    make_config: Callable[..., SandboxConfig],
) -> None:
    config = make_config(pending_s=1.0)
    async with (
        SandboxServer(config) as one,
        SandboxServer(config) as two,
        client_for(one) as first,
        client_for(two) as second,
    ):
        task_id = await create(first)
        assert (await task(second, task_id))["output"]["task_status"] == "PENDING"
        assert (await second.post(f"/tasks/{task_id}/cancel")).status_code == 200
        assert (await task(first, task_id))["output"]["task_status"] == "CANCELED"
        assert (await first.post(f"/tasks/{task_id}/cancel")).status_code == 400
        assert (await second.get("/tasks")).json()["total"] == 1


async def test_success_waits_for_the_clip(
    make_config: Callable[..., SandboxConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_encode = clips.encode_clip

    def gated_encode(spec: clips.ClipSpec, path: Path, **options: Any) -> None:
        release.wait(timeout=30)
        real_encode(spec, path, **options)

    monkeypatch.setattr(clips, "encode_clip", gated_encode)
    config = make_config(clip_cache_dir=tmp_path / "clips", pending_s=0.05, running_s=0.05)
    async with SandboxServer(config) as server, client_for(server) as client:
        try:
            task_id = await create(client, "wan2.6-i2v-flash", resolution="720P", duration=2, audio=False)
            created = time.monotonic()

            async def held_back() -> bool:
                # Long past the planned end (0.1 s), the task still runs: its video does not exist yet.
                status = (await task(client, task_id))["output"]["task_status"]
                if time.monotonic() - created > 0.3:
                    assert status == "RUNNING"
                return time.monotonic() - created > 0.6

            await wait_for(held_back, within=5)
        finally:
            release.set()
        done = await wait_status(client, task_id, "SUCCEEDED")
        output = done["output"]
        assert _parse(output["end_time"]) - _parse(output["submit_time"]) >= 0.6
        assert (await client.get(output["video_url"])).status_code == 200


# --- outcomes forced by the prompt -------------------------------------------------------------------


async def test_failed_task_shape(client: httpx.AsyncClient) -> None:
    body = body_for("wan2.2-i2v-flash")
    body["input"]["prompt"] = "a cat [sandbox:FAILED/DataInspectionFailed]"
    task_id = (await client.post(I2V_PATH, headers=ASYNC, json=body)).json()["output"]["task_id"]
    done = await wait_status(client, task_id)
    assert "usage" not in done
    output = done["output"]
    assert output["task_status"] == "FAILED"
    assert (output["code"], output["message"]) == (
        "DataInspectionFailed",
        "Output data may contain inappropriate content.",
    )
    assert {"submit_time", "scheduled_time", "end_time"} <= set(output)
    assert "video_url" not in output


@pytest.mark.parametrize(
    ("marker", "code"),
    [
        ("[sandbox:FAILED]", "DataInspectionFailed"),
        ("[sandbox:failed/InternalError.Timeout]", "InternalError.Timeout"),
    ],
)
async def test_failure_codes(client: httpx.AsyncClient, marker: str, code: str) -> None:
    body = body_for("wan2.2-i2v-flash")
    body["input"]["prompt"] = marker
    task_id = (await client.post(I2V_PATH, headers=ASYNC, json=body)).json()["output"]["task_id"]
    assert (await wait_status(client, task_id))["output"]["code"] == code


async def test_unknown_stuck_and_slow_outcomes(make_config: Callable[..., SandboxConfig]) -> None:
    async with (
        SandboxServer(make_config(pending_s=0.05, running_s=0.1)) as server,
        client_for(server) as client,
    ):
        ids = {}
        for marker in ("[sandbox:UNKNOWN]", "[sandbox:stuck]", "[sandbox:slow/4]", "plain"):
            body = body_for("wan2.2-i2v-flash")
            body["input"]["prompt"] = f"cat {marker}"
            ids[marker] = (await client.post(I2V_PATH, headers=ASYNC, json=body)).json()["output"]["task_id"]
        assert (await wait_status(client, ids["[sandbox:UNKNOWN]"]))["output"] == {
            "task_id": ids["[sandbox:UNKNOWN]"],
            "task_status": "UNKNOWN",
        }
        slow = (await wait_status(client, ids["[sandbox:slow/4]"]))["output"]
        assert _parse(slow["end_time"]) - _parse(slow["submit_time"]) >= 0.59  # 4 x 0.15 s
        assert (await task(client, ids["[sandbox:stuck]"]))["output"]["task_status"] == "RUNNING"
        statuses = {row["task_id"]: row["status"] for row in (await client.get("/tasks")).json()["data"]}
        assert ids["[sandbox:UNKNOWN]"] not in statuses  # forgotten by the service
        assert statuses[ids["[sandbox:stuck]"]] == "RUNNING"

        response = await client.post(
            I2V_PATH,
            headers=ASYNC,
            json={
                **body_for("wan2.2-i2v-flash"),
                "input": {"img_url": body["input"]["img_url"], "prompt": "[sandbox:explode]"},
            },
        )
        assert response.status_code == 400


# --- limits (§7) -------------------------------------------------------------------------------------


async def test_concurrency_queues_extra_tasks(make_config: Callable[..., SandboxConfig]) -> None:
    config = make_config(
        enforce_limits=True,
        submit_rps={"wan2.2": 100},
        max_running={"wan2.2": 2},
        task_api_qps=1000,
        pending_s=0.05,
        running_s=0.8,
    )
    async with SandboxServer(config) as server, client_for(server) as client:
        ids = [await create(client) for _ in range(3)]
        other_family = await create(client, "wan2.6-i2v-flash", resolution="720P", audio=False)
        await wait_status(client, ids[1], "RUNNING")
        assert (await task(client, ids[0]))["output"]["task_status"] == "RUNNING"
        assert (await task(client, ids[2]))["output"]["task_status"] == "PENDING"

        async def started() -> str | None:  # another family's slots: it is not queued behind wan2.2's
            status: str = (await task(client, other_family))["output"]["task_status"]
            return None if status == "PENDING" else status

        assert await wait_for(started, within=10, what="the other family's task") in ("RUNNING", "SUCCEEDED")
        first = (await wait_status(client, ids[0], "SUCCEEDED"))["output"]
        third = (await wait_status(client, ids[2], "SUCCEEDED"))["output"]
        assert _parse(third["scheduled_time"]) >= _parse(first["scheduled_time"]) + 0.79


async def test_submit_rate_limit(make_config: Callable[..., SandboxConfig]) -> None:
    async with SandboxServer(make_config(enforce_limits=True)) as server, client_for(server) as client:
        answers = [
            await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash")) for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json()["code"] == "Throttling.RateQuota"
        assert answers[2].json()["message"] == "Requests rate limit exceeded, please try again later."
        # another family has its own budget
        other = await client.post(
            I2V_PATH, headers=ASYNC, json=body_for("wan2.6-i2v-flash", resolution="720P")
        )
        assert other.status_code == 200
        assert server.stats.created_total == 3


async def test_task_api_rate_limit(make_config: Callable[..., SandboxConfig]) -> None:
    async with (
        SandboxServer(make_config(enforce_limits=True, task_api_qps=3)) as server,
        client_for(server) as client,
    ):
        statuses = [(await client.get("/tasks/x")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
