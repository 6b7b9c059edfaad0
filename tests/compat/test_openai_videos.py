"""The official `openai` SDK (pinned in the dev extra) against `/v1/videos` on a gateway served on
127.0.0.1 with its sandbox and its loops running: what `client.videos.*` code does, end to end.

Two flows, each checking several things: one tenant's life of videos (create_and_poll with an uploaded
file, the poll-after header, downloads, list, remix, a failed job, delete), and the refusals (a bad
`seconds`, an OpenAI model name, no image, another tenant's id, no key) in OpenAI's error envelope while
`/v1/jobs` keeps problem+json.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import av
import openai
import pytest
from openai import AsyncOpenAI
from PIL import Image

from app.config import Settings
from tests.conftest import Served, make_settings, serve
from tests.helpers import image_bytes

# The SDK marks the Videos methods deprecated (OpenAI's own Sora service is retired); the gateway is not.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

ALICE = "alice-key-" + "a" * 32
BOB = "bob-key-" + "b" * 32


@pytest.fixture
async def served(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    settings: Settings = make_settings(
        tmp_path,
        database_url,
        gateway_api_keys=f"alice:{ALICE},bob:{BOB}",
        workers_enabled=True,
        max_request_bytes=1 << 20,
    )
    async with serve(settings) as gateway:
        yield gateway


@pytest.fixture
async def sdk(served: Served) -> AsyncIterator[Callable[[str], AsyncOpenAI]]:
    """`sdk(key)`: an `AsyncOpenAI` client of the gateway with that key (closed after the test)."""
    made: list[AsyncOpenAI] = []

    def make(key: str) -> AsyncOpenAI:
        made.append(AsyncOpenAI(base_url=f"{served.url}/v1", api_key=key, max_retries=0, timeout=30))
        return made[-1]

    yield make
    for client in made:
        await client.close()


async def test_a_tenants_videos_through_the_openai_sdk(
    served: Served, sdk: Callable[[str], AsyncOpenAI], tmp_path: Path
) -> None:
    alice = sdk(ALICE)
    image = tmp_path / "cat.png"
    image.write_bytes(image_bytes(640, 360))

    # create_and_poll: multipart with the uploaded file; completes with OpenAI's object.
    video = await alice.videos.create_and_poll(
        model="wan2.6-i2v-flash",
        prompt="a cat on a lawn",
        input_reference=image,
        seconds="4",
        size="1280x720",
    )
    assert video.status == "completed", video
    assert (video.object, video.model, video.seconds, video.size) == (
        "video",
        "wan2.6-i2v-flash",
        "4",
        "1280x720",
    )
    assert video.progress == 100 and video.error is None and video.prompt == "a cat on a lawn"
    assert video.completed_at is not None and video.completed_at >= video.created_at
    # An ordinary job: the same id at /v1/jobs.
    job = (
        await served.client.get(f"/v1/jobs/{video.id}", headers={"Authorization": f"Bearer {ALICE}"})
    ).json()
    assert job["status"] == "succeeded" and job["request"]["duration"] == 4

    # The MP4: probe-able, 1280x720.
    mp4 = await alice.videos.download_content(video.id)
    with av.open(io.BytesIO(mp4.read())) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1280, 720)

    # The poster frame and the sprite sheet: JPEGs, rendered once from the stored file.
    for variant in ("thumbnail", "spritesheet"):
        jpeg = await alice.videos.download_content(video.id, variant=variant)
        with Image.open(io.BytesIO(jpeg.read())) as picture:
            picture.load()
            assert picture.format == "JPEG" and picture.width > 0, variant

    # A retrieve while queued says when to look again, within the gateway's own poll bounds (50–200 ms).
    queued = await alice.videos.with_raw_response.create(
        prompt="[sandbox:FAILED/DataInspectionFailed] a storm",
        input_reference=("storm.png", image_bytes(640, 360), "image/png"),
        seconds="2",  # type: ignore[arg-type]  # Wan durations, not only Sora's 4, 8, 12
    )
    assert 50 <= int(queued.headers["openai-poll-after-ms"]) <= 200
    failed = await alice.videos.poll(queued.parse().id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "upstream_failed" and failed.progress == 0

    # remix: the same image and parameters, a new prompt.
    remix = await alice.videos.remix(video.id, prompt="a dog on a lawn")
    assert remix.remixed_from_video_id == video.id and remix.status in ("queued", "in_progress")
    remix = await alice.videos.poll(remix.id)
    assert remix.status == "completed" and remix.prompt == "a dog on a lawn" and remix.seconds == "4"
    headers = {"Authorization": f"Bearer {ALICE}"}
    source_job, remix_job = [
        (await served.client.get(f"/v1/jobs/{i}", headers=headers)).json() for i in (video.id, remix.id)
    ]
    assert (
        remix_job["request"]["reference_image"]["sha256"]
        == source_job["request"]["reference_image"]["sha256"]
    )

    # list: OpenAI's page, newest first by default, `after` = the last id seen; asc reverses.
    page = await alice.videos.list(limit=2)
    assert [v.id for v in page.data] == [remix.id, failed.id] and page.has_more
    everything = [v.id async for v in alice.videos.list(limit=2)]
    assert everything == [remix.id, failed.id, video.id]
    oldest = await alice.videos.list(order="asc", limit=10)
    assert [v.id for v in oldest.data] == [video.id, failed.id, remix.id] and not oldest.has_more

    # delete: OpenAI's deleted object, then the video is gone everywhere.
    deleted = await alice.videos.delete(video.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
    with pytest.raises(openai.NotFoundError):
        await alice.videos.retrieve(video.id)
    assert [v.id async for v in alice.videos.list()] == [remix.id, failed.id]


async def test_refusals_in_openai_s_envelope(
    served: Served, sdk: Callable[[str], AsyncOpenAI], png_uri: str
) -> None:
    alice, bob = sdk(ALICE), sdk(BOB)
    upload = ("cat.png", image_bytes(640, 360), "image/png")

    with pytest.raises(openai.BadRequestError) as bad_seconds:
        await alice.videos.create(prompt="a cat", input_reference=upload, seconds="20")  # type: ignore[arg-type]
    assert bad_seconds.value.param == "seconds" and "2, 3" in bad_seconds.value.message

    with pytest.raises(openai.BadRequestError) as sora:
        await alice.videos.create(prompt="a cat", input_reference=upload, model="sora-2")
    assert sora.value.param == "model" and "wan2.6-i2v-flash" in sora.value.message

    with pytest.raises(openai.BadRequestError) as no_image:
        await alice.videos.create(prompt="a cat")
    assert no_image.value.param == "input_reference"

    # {"image_url": …}: the SDK's create() refuses a dict there (it expects a file), so it rides in
    # extra_body, sent as the form field `input_reference[image_url]`; Wan options as text fields.
    by_url = await alice.videos.create(
        prompt="a cat", size="720x1280", extra_body={"input_reference": {"image_url": png_uri}, "seed": 3}
    )
    # 720x1280 picks the 720P tier; the video keeps the 16:9 image's aspect ratio, and `size` says so.
    assert (by_url.status, by_url.size, by_url.seconds) == ("queued", "1280x720", "5")

    # JSON with {"image_url": data:…} and an Idempotency-Key: replayed, not made twice.
    body = {"prompt": "a cat", "seconds": "2", "size": "1280x720", "input_reference": {"image_url": png_uri}}
    auth = {"Authorization": f"Bearer {ALICE}", "Idempotency-Key": "k-1"}
    first = await served.client.post("/v1/videos", json={**body, "seed": 7}, headers=auth)
    again = await served.client.post("/v1/videos", json={**body, "seed": 7}, headers=auth)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["id"] == again.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    video_id = first.json()["id"]
    assert first.json()["status"] == "queued" and first.json()["size"] == "1280x720"

    # Another tenant's id is not found, whatever is asked of it.
    with pytest.raises(openai.NotFoundError):
        await bob.videos.retrieve(video_id)
    with pytest.raises(openai.NotFoundError):
        await bob.videos.download_content(video_id)
    with pytest.raises(openai.NotFoundError):
        await bob.videos.remix(video_id, prompt="mine now")
    with pytest.raises(openai.NotFoundError):
        await bob.videos.delete(video_id)
    assert (await bob.videos.list()).data == []

    # No key: OpenAI's envelope here, problem+json on the native API.
    denied = await served.client.get("/v1/videos")
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
    native = await served.client.get("/v1/jobs")
    assert native.status_code == 401 and native.headers["content-type"] == "application/problem+json"
    too_large = await served.client.post(
        "/v1/videos", content=b"x" * ((1 << 20) + 1), headers={"Authorization": f"Bearer {ALICE}"}
    )
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "request_too_large"
    broken = await served.client.post(
        "/v1/videos",
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\n",
        headers={"Authorization": f"Bearer {ALICE}", "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_form", broken.text
    unknown = await served.client.get("/v1/videos?stauts=1", headers={"Authorization": f"Bearer {ALICE}"})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "stauts"
