"""A job travels the whole data path over real loopback HTTP: POST → sandbox → stored, playable MP4."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av

from tests.conftest import Served


async def test_png_job_reaches_succeeded_and_the_mp4_matches_its_result(
    gateway: Served, png_uri: str, tmp_path: Path
) -> None:
    response = await gateway.client.post(
        "/v1/jobs",
        json={
            "prompt": "a cat running",
            "duration": 2,
            "size": "1280*720",
            "seed": 42,
            "fps": 30,
            "reference_image": png_uri,
            "motion_strength": 0.5,
        },
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["request"]["reference_image"]["kind"] == "data_uri"
    assert "base64" not in response.text  # the image is described, never echoed
    assert any("motion_strength" in w for w in job["warnings"])

    done = await gateway.drive(job["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done.get("error")
    result = done["result"]
    assert result["video_url"] == f"{gateway.url}/v1/jobs/{job['id']}/content"
    assert (result["width"], result["height"], result["fps"], result["seed"]) == (1280, 720, 30, 42)
    assert abs(result["duration"] - 2) < 0.1
    assert done["upstream"]["task_id"] and done["upstream"]["status"] == "SUCCEEDED"
    assert done["usage"]["duration"] == 2
    assert done["progress"] == 100

    content = await gateway.client.get(f"/v1/jobs/{job['id']}/content")
    assert content.status_code == 200
    assert content.headers["content-type"] == "video/mp4"
    assert content.headers["etag"] == f'"{result["sha256"]}"'
    assert hashlib.sha256(content.content).hexdigest() == result["sha256"]
    assert len(content.content) == result["bytes"]

    path = tmp_path / "downloaded.mp4"
    path.write_bytes(content.content)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (
            result["width"],
            result["height"],
        )
        assert stream.average_rate is not None and container.duration is not None
        assert float(stream.average_rate) == result["fps"]
        assert abs(container.duration / 1e6 - result["duration"]) < 0.05
        assert stream.codec_context.name == "h264"
        assert len(container.streams.audio) == 1  # wan2.6-i2v-flash has sound by default


async def test_range_and_conditional_requests(gateway: Served, png_uri: str) -> None:
    job = (
        await gateway.client.post(
            "/v1/jobs", json={"prompt": "p", "duration": 2, "size": "1280*720", "reference_image": png_uri}
        )
    ).json()
    done = await gateway.drive(job["id"], "succeeded", "failed")
    url = f"/v1/jobs/{job['id']}/content"
    total = done["result"]["bytes"]
    full = (await gateway.client.get(url)).content

    part = await gateway.client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{total}"
    assert part.content == full[100:200]

    tail = await gateway.client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == full[-50:]

    beyond = await gateway.client.get(url, headers={"Range": f"bytes={total + 10}-"})
    assert beyond.status_code == 416

    etag = done["result"]["sha256"]
    cached = await gateway.client.get(url, headers={"If-None-Match": f'"{etag}"'})
    assert cached.status_code == 304 and cached.content == b""
    changed = await gateway.client.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200


async def test_content_of_an_unfinished_job_is_a_clear_conflict(gateway: Served, png_uri: str) -> None:
    job = (await gateway.client.post("/v1/jobs", json={"prompt": "p", "reference_image": png_uri})).json()
    response = await gateway.client.get(f"/v1/jobs/{job['id']}/content")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "video_not_ready"
