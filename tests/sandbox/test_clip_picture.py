"""The sandbox's video shows the task's input: the image panned and zoomed, with the prompt as a caption;
kf2v fades from the first frame to the last. Fixed images and prompts, so the shared clip cache serves
reruns."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from app.providers.dashscope.capabilities import OUTPUT_FPS
from app.sandbox.clips import caption_of
from app.sandbox.config import SandboxConfig
from app.sandbox.server import SandboxServer
from tests.sandbox.sandbox_helpers import ASYNC, body_for, client_for, path_for, probe, wait_status

RED, BLUE, GREEN = (220, 40, 40), (40, 60, 220), (40, 180, 70)


def png(width: int, height: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> str:
    """A data: URI of a PNG, `left` colour on the left half and `right` on the right one."""
    image = Image.new("RGB", (width, height), right)
    image.paste(left, (0, 0, width // 2, height))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def frames(path: Path, *wanted: int) -> list[NDArray[np.uint8]]:
    """The frames at the `wanted` indices (negative: from the end), as RGB."""
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))  # every frame decodes; only the wanted ones convert
        return [np.asarray(decoded[i].to_ndarray(format="rgb24"), dtype=np.uint8) for i in wanted]


def boundary(frame: NDArray[np.uint8]) -> int:
    """The column where the red half turns blue, on the middle row."""
    row = frame[frame.shape[0] // 2].astype(int)
    return int(np.argmax(row[:, 2] > row[:, 0]))


def close(frame: NDArray[np.uint8], colour: tuple[int, int, int], within: float = 12) -> bool:
    """The frame's mean colour (above the caption) is near `colour`."""
    top = frame[: frame.shape[0] * 2 // 3].reshape(-1, 3).mean(axis=0)
    return bool(np.abs(top - np.array(colour)).max() < within)


async def test_clips_show_the_image_and_the_prompt(
    make_config: Callable[..., SandboxConfig], tmp_path: Path
) -> None:
    async with (
        SandboxServer(make_config(clip_captions=True, clip_pictures=True)) as server,
        client_for(server) as client,
    ):

        async def video(model: str, name: str, **parameters: object) -> tuple[Path, dict[str, object]]:
            body = body_for(model, image=png(1280, 720, RED, BLUE), **parameters)
            body["input"]["prompt"] = "a cat walks along the harbour wall at dawn [sandbox:slow/1]"
            if "kf2v" in model:
                body["input"]["first_frame_url"] = png(640, 360, RED, RED)
                body["input"]["last_frame_url"] = png(640, 360, GREEN, GREEN)
            response = await client.post(path_for(model), headers=ASYNC, json=body)
            assert response.status_code == 200, response.text
            done = await wait_status(client, response.json()["output"]["task_id"], "SUCCEEDED", within=60)
            path = tmp_path / name
            path.write_bytes((await client.get(done["output"]["video_url"])).content)
            return path, probe(path)

        # i2v with sound: the red|blue image under a pan and zoom, captioned.
        path, media = await video("wan2.6-i2v-flash", "i2v.mp4", resolution="720P", duration=2, audio=True)
        assert (media["width"], media["height"], media["codec"], media["pix_fmt"]) == (
            1280,
            720,
            "h264",
            "yuv420p",
        )
        assert (media["fps"], media["frames"], media["audio"]) == (OUTPUT_FPS, 2 * OUTPUT_FPS, ["aac"])
        assert media["duration"] == pytest.approx(2)
        first, middle, last = frames(path, 0, 30, -1)
        left, right = middle[:, : 1280 // 3], middle[:, -1280 // 3 :]
        assert close(left, RED) and close(right, BLUE)  # the image, fitted to the frame
        assert close(middle, tuple((np.array(RED) + BLUE) // 2), within=25)
        # The camera moves: zooming in towards the right pulls the red|blue edge leftwards.
        assert boundary(first) - boundary(last) > 20
        assert np.abs(first.astype(int) - last.astype(int)).mean() > 1
        # The caption: white text near the bottom (the image itself has nothing near white).
        assert middle[-720 // 4 :].min(axis=2).max() > 200 > middle[: 720 // 2].min(axis=2).max()

        # kf2v, no sound: a cross-fade from the first frame (red) to the last (green).
        path, media = await video("wan2.2-kf2v-flash", "kf2v.mp4", resolution="480P")
        assert (media["width"], media["height"], media["frames"], media["audio"]) == (832, 464, 150, [])
        first, middle, last = frames(path, 0, 75, -1)
        assert close(first, RED, within=8) and close(last, GREEN, within=8)
        assert close(middle, tuple((np.array(RED) + GREEN) // 2), within=12)

        # One encode per picture: the same image and prompt are served from the cache.
        cached = sorted(server.config.clip_cache_dir.glob("wan-sandbox-v2-832x464-5s-silent-*.mp4"))
        mtimes = [clip.stat().st_mtime for clip in cached]
        again, _ = await video("wan2.2-kf2v-flash", "again.mp4", resolution="480P")
        assert again.read_bytes() == path.read_bytes()
        assert [clip.stat().st_mtime for clip in cached] == mtimes


def test_caption_is_the_prompts_first_words() -> None:
    assert caption_of("a cat [sandbox:slow/2] walks   along the harbour wall at dawn") == (
        "a cat walks along the harbour"
    )
    assert caption_of(None) == caption_of("[sandbox:FAILED]") == ""
    assert caption_of("x" * 100) == "x" * 47 + "…"
