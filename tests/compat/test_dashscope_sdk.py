"""The official `dashscope` SDK (pinned in the dev extra) against the gateway's `/api/v1` facade, changing
only `dashscope.base_http_api_url`: real HTTP on 127.0.0.1, the job loop running by itself (the SDK's
`wait` polls), the embedded sandbox upstream. The SDK is synchronous (requests): it runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import dashscope
import pytest
from dashscope import VideoSynthesis
from sqlalchemy import select

from app.compat.dashscope.uploads import DashScopeUpload
from tests.conftest import Served, make_settings, serve
from tests.helpers import data_uri, image_bytes

ALICE = "alice-key-" + "a" * 32
BOB = "bob-key-" + "b" * 32
#: The seed's own sample (seeds/000: the first-frame i2v reference), image and audio URLs aside.
SEED_PROMPT = (
    "A scene of urban fantasy art. A dynamic graffiti art character. A boy made of spray paint comes to "
    "life from a concrete wall. He raps an English song at high speed while striking a classic, energetic "
    "rapper pose."
)
T = TypeVar("T")
#: `VideoSynthesis.list` (GET /api/v1/tasks): the SDK's stubs do not show it.
list_tasks = VideoSynthesis.list  # type: ignore[attr-defined]


@pytest.fixture
async def facade(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    settings = make_settings(
        tmp_path,
        database_url,
        workers_enabled=True,
        gateway_api_keys=f"alice:{ALICE},bob:{BOB}",
        max_request_bytes=1 << 20,
    )
    async with serve(settings) as served:
        monkeypatch.setattr(dashscope, "base_http_api_url", f"{served.url}/api/v1")
        yield served


async def sdk(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(call, *args, **kwargs)


async def download(served: Served, url: str, key: str) -> bytes:
    """`video_url` is a signed link: a plain GET, no key (`key` is the owner's, not sent)."""
    del key
    assert url.startswith(f"{served.url}/v1/links/"), url
    response = await served.client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    return response.content


def is_mp4(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


async def test_seed_sample_with_a_local_file_then_fetch_list_and_tenancy(
    facade: Served, tmp_path: Path
) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(image_bytes(640, 360))
    rsp = await sdk(
        VideoSynthesis.call,
        api_key=ALICE,
        model="wan2.6-i2v-flash",
        prompt=SEED_PROMPT,
        img_url=f"file://{image}",  # getPolicy → the gateway's upload host → oss:// in the create
        resolution="720P",
        duration=10,
        prompt_extend=True,
        watermark=False,
        negative_prompt="",
        seed=12345,
    )
    assert rsp.status_code == HTTPStatus.OK, rsp
    assert rsp.output.task_status == "SUCCEEDED"
    task_id = rsp.output.task_id
    assert is_mp4(await download(facade, rsp.output.video_url, ALICE))
    # Numbers as numbers (the wan2.6 usage keys), times in DashScope's format.
    raw = await facade.client.get(f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {ALICE}"})
    body = raw.json()
    assert body["usage"]["duration"] == 10 and isinstance(body["usage"]["duration"], int)
    assert body["usage"]["SR"] == 720 and body["usage"]["video_count"] == 1
    assert len(body["output"]["end_time"]) == len("2025-09-25 11:07:28.590")
    # The same job through the native API.
    facade.headers = {"Authorization": f"Bearer {ALICE}"}
    job = await facade.job(task_id)
    assert (
        job["status"] == "succeeded"
        and job["result"]["signed_url"].split("?")[0] == (rsp.output.video_url.split("?")[0])
    )

    listed = await sdk(list_tasks, api_key=ALICE, status="SUCCEEDED", model_name="wan2.6-i2v-flash")
    assert listed.status_code == 200
    assert [row["task_id"] for row in listed.output["data"]] == [task_id]
    assert listed.output["total"] == 1 and listed.output["data"][0]["status"] == "SUCCEEDED"
    assert (await sdk(list_tasks, api_key=ALICE, status="FAILED")).output["data"] == []

    # Another tenant: its key does not see the task (DashScope's UNKNOWN), nor can it use alice's upload.
    theirs = await sdk(VideoSynthesis.fetch, task_id, api_key=BOB)
    assert theirs.status_code == 200 and theirs.output.task_status == "UNKNOWN"
    assert (await sdk(list_tasks, api_key=BOB)).output["data"] == []
    assert (await sdk(VideoSynthesis.cancel, task_id, api_key=BOB)).code == "UnsupportedOperation"
    async with facade.gateway.sessions() as session:
        uploaded = list((await session.scalars(select(DashScopeUpload.key))).all())
    assert len(uploaded) == 1 and uploaded[0] is not None and uploaded[0].endswith("/x.png")
    stolen = await sdk(
        VideoSynthesis.async_call,
        api_key=BOB,
        model="wan2.6-i2v-flash",
        prompt="p",
        img_url=f"oss://{uploaded[0]}",
    )
    assert (stolen.status_code, stolen.code) == (400, "InvalidParameter.DataInspection"), stolen
    assert "input.img_url" in stolen.message
    again = await sdk(
        VideoSynthesis.async_call,
        api_key=ALICE,
        model="wan2.6-i2v-flash",
        prompt="p",
        img_url=f"oss://{uploaded[0]}",
    )
    assert again.status_code == 200, again  # its owner can name it again (for 48 h)
    create = "/api/v1/services/aigc/video-generation/video-synthesis"
    as_alice = {"Authorization": f"Bearer {ALICE}", "X-DashScope-Async": "enable"}
    body = {"model": "wan2.6-i2v-flash", "input": {"prompt": "p", "img_url": f"oss://{uploaded[0]}"}}
    unresolved = await facade.client.post(create, json=body, headers=as_alice)  # no OssResourceResolve
    assert (unresolved.status_code, unresolved.json()["code"]) == (400, "InvalidParameter.DataInspection")
    policy = await facade.client.get(
        "/api/v1/uploads", params={"action": "getPolicy", "model": "wan2.6-i2v-flash"}, headers=as_alice
    )
    grant = policy.json()["data"]
    assert grant["upload_host"] == f"{facade.url}/api/v1/uploads/oss"
    form = {"OSSAccessKeyId": "k", "policy": grant["policy"], "key": f"{grant['upload_dir']}/y.png"}
    forged = await facade.client.post(
        grant["upload_host"], data={**form, "Signature": "forged"}, files={"file": ("y.png", b"x")}
    )
    assert forged.status_code == 403 and b"SignatureDoesNotMatch" in forged.content


async def test_async_call_fetch_wait_cancel_kf2v_failures_and_errors(facade: Served) -> None:
    # kf2v on its own path (the SDK routes any `kf2v` model to image2video/video-synthesis).
    task = await sdk(
        VideoSynthesis.async_call,
        api_key=ALICE,
        model="wan2.2-kf2v-flash",
        prompt="blue monster",
        first_frame_url=data_uri(640, 360),
        last_frame_url=data_uri(640, 360),
        resolution="480P",
        duration=5,
    )
    assert task.status_code == 200 and task.output.task_status == "PENDING", task
    fetched = await sdk(VideoSynthesis.fetch, task, api_key=ALICE)
    assert fetched.output.task_status in ("PENDING", "RUNNING", "SUCCEEDED")
    done = await sdk(VideoSynthesis.wait, task, api_key=ALICE)
    assert done.output.task_status == "SUCCEEDED" and is_mp4(
        await download(facade, done.output.video_url, ALICE)
    )

    # Cancel while PENDING (the sandbox keeps this task pending for a while), then FAILED with its code.
    slow = await sdk(
        VideoSynthesis.async_call,
        api_key=ALICE,
        model="wan2.6-i2v-flash",
        prompt="[sandbox:slow/200] a cat",
        img_url=data_uri(),
        duration=2,
        resolution="720P",
    )
    canceled = await sdk(VideoSynthesis.cancel, slow, api_key=ALICE)
    assert canceled.status_code == 200, canceled
    assert (await sdk(VideoSynthesis.fetch, slow, api_key=ALICE)).output.task_status == "CANCELED"
    failing = await sdk(
        VideoSynthesis.call,
        api_key=ALICE,
        model="wan2.6-i2v-flash",
        prompt="[sandbox:FAILED/DataInspectionFailed] a cat",
        img_url=data_uri(),
        duration=2,
        resolution="720P",
    )
    assert failing.output.task_status == "FAILED"
    assert failing.output.code == "DataInspectionFailed" and failing.output.message

    # Errors, as the SDK reads them: bad parameter, model on the wrong path, bad key; no upstream call.
    bad = await sdk(
        VideoSynthesis.async_call,
        api_key=ALICE,
        model="wan2.6-i2v-flash",
        prompt="p",
        img_url=data_uri(),
        duration=20,
    )
    assert (bad.status_code, bad.code) == (400, "InvalidParameter") and "parameters.duration" in bad.message
    missing = await sdk(VideoSynthesis.async_call, api_key=ALICE, model="wan2.6-i2v-flash", prompt="p")
    assert (missing.status_code, missing.code) == (400, "InvalidParameter")
    assert "input.img_url" in missing.message
    wrong_path = await sdk(
        VideoSynthesis.async_call,
        api_key=ALICE,
        model="wan2.6-i2v-flash",
        task="image2video",
        img_url=data_uri(),
    )
    assert wrong_path.status_code == 400 and "url error" in wrong_path.message
    refused = await sdk(VideoSynthesis.async_call, api_key="sk-wrong", model="wan2.6-i2v-flash", img_url="x")
    assert (refused.status_code, refused.code, refused.message) == (
        401,
        "InvalidApiKey",
        "Invalid API-key provided.",
    )

    # Without the async header (not the SDK: it always sends it), and the native API is unchanged.
    raw = await facade.client.post(
        "/api/v1/services/aigc/video-generation/video-synthesis",
        json={"model": "wan2.6-i2v-flash", "input": {"img_url": data_uri()}},
        headers={"Authorization": f"Bearer {ALICE}"},
    )
    assert raw.status_code == 403
    assert raw.json()["code"] == "AccessDenied"
    assert raw.json()["message"] == "current user api does not support synchronous calls"
    assert set(raw.json()) == {"request_id", "code", "message"}
    native = await facade.client.post("/v1/jobs", json={}, headers={"Authorization": f"Bearer {ALICE}"})
    assert native.status_code == 422 and native.headers["content-type"] == "application/problem+json"
    no_key = await facade.client.get(f"/api/v1/tasks/{task.output.task_id}/")  # the aiohttp flavour's slash
    assert (no_key.status_code, no_key.json()["message"]) == (401, "No API-key provided.")
    unknown = await facade.client.get("/api/v1/nothing", headers={"Authorization": f"Bearer {ALICE}"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "NotFound"
    # What no facade route answers is in DashScope's shape too: a wrong method, a body over the limit.
    wrong = await facade.client.delete("/api/v1/tasks", headers={"Authorization": f"Bearer {ALICE}"})
    assert (
        wrong.status_code == 405
        and wrong.json()["code"] == "MethodNotAllowed"
        and "GET" in wrong.headers["allow"]
    )
    too_large = await facade.client.post(
        "/api/v1/services/aigc/video-generation/video-synthesis",
        content=b"x" * ((1 << 20) + 1),
        headers={"Authorization": f"Bearer {ALICE}", "X-DashScope-Async": "enable"},
    )
    assert too_large.status_code == 413 and too_large.json()["code"] == "RequestTooLarge"
    assert set(too_large.json()) == {"request_id", "code", "message"}
