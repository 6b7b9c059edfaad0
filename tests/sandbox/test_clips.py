"""Every model's happy path ends in a real MP4 whose probed geometry, timing and audio are right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.providers.dashscope.capabilities import MODELS, OUTPUT_FPS, output_size
from app.sandbox.clips import ClipSpec, encode_clip
from app.sandbox.server import SandboxServer
from tests.helpers import data_uri
from tests.sandbox.sandbox_helpers import create, probe, wait_status

# Resolution and duration per model, chosen so that few distinct clips (size, duration, audio) are needed.
CASES: dict[str, dict[str, Any]] = {
    "wan2.6-i2v-flash": {"resolution": "720P", "duration": 2},
    "wan2.6-i2v": {"resolution": "720P", "duration": 2},
    "wan2.6-i2v-us": {"resolution": "720P", "duration": 5},
    "wan2.5-i2v-preview": {"resolution": "480P", "duration": 5},
    "wan2.2-i2v-flash": {"resolution": "480P"},
    "wan2.2-i2v-plus": {"resolution": "480P"},
    "wanx2.1-i2v-turbo": {"resolution": "480P", "duration": 3},
    "wan2.1-i2v-turbo": {"resolution": "480P", "duration": 3},
    "wanx2.1-i2v-plus": {},
    "wan2.1-i2v-plus": {},
    "wan2.2-kf2v-flash": {"resolution": "480P"},
    "wanx2.1-kf2v-plus": {},
    "wan2.1-kf2v-plus": {},
}


def test_every_model_has_a_case() -> None:
    assert set(CASES) == set(MODELS)


async def _generate(
    client: httpx.AsyncClient, model: str, image: str, tmp_path: Path, **parameters: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    done = await wait_status(
        client, await create(client, model, image=image, **parameters), "SUCCEEDED", within=60
    )
    video = await client.get(done["output"]["video_url"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    path = tmp_path / "result.mp4"
    path.write_bytes(video.content)
    return done, probe(path)


@pytest.mark.parametrize("model", list(CASES))
async def test_model_produces_a_real_mp4(client: httpx.AsyncClient, tmp_path: Path, model: str) -> None:
    spec = MODELS[model]
    parameters = CASES[model]
    resolution = parameters.get("resolution", spec.default_resolution)
    duration = parameters.get("duration", spec.default_duration)
    done, media = await _generate(client, model, data_uri(1280, 720), tmp_path, **parameters)

    width, height = output_size(resolution, 1280, 720)
    assert (media["width"], media["height"]) == (width, height)
    assert width % 16 == 0
    assert height % 16 == 0
    assert (media["codec"], media["pix_fmt"], media["fps"]) == ("h264", "yuv420p", OUTPUT_FPS)
    assert media["frames"] == duration * OUTPUT_FPS
    assert media["duration"] == pytest.approx(duration)
    assert media["audio"] == (["aac"] if spec.has_audio(None) else [])

    usage = done["usage"]
    seconds_key = "duration" if spec.usage_style in ("wan2.6", "sr") else "video_duration"
    assert usage[seconds_key] == duration
    assert usage["video_count"] == 1


async def test_portrait_image_without_sound(client: httpx.AsyncClient, tmp_path: Path) -> None:
    done, media = await _generate(
        client, "wan2.6-i2v-flash", data_uri(750, 1000), tmp_path, resolution="720P", duration=2, audio=False
    )
    assert (media["width"], media["height"]) == (816, 1104)  # the §2.4 example
    assert media["audio"] == []
    assert done["usage"]["audio"] is False


async def test_result_supports_ranges_and_head(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    done = await wait_status(client, await create(client), "SUCCEEDED")
    url = done["output"]["video_url"]
    full = await client.get(url)
    part = await client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.content == full.content[:100]
    head = await client.head(url)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(full.content)
    assert sandbox.stats.downloads == 3


def test_encode_clip_directly(tmp_path: Path) -> None:
    path = tmp_path / "tiny.mp4"
    encode_clip(ClipSpec(64, 48, 1, audio=True), path)
    media = probe(path)
    assert (media["width"], media["height"], media["frames"], media["audio"]) == (64, 48, 30, ["aac"])
