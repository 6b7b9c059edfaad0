"""The Vercel AI SDK (`ai` + `@ai-sdk/alibaba`, pinned in tests/compat/vercel/package-lock.json and
installed by `make install`) against the facade: `experimental_generateVideo` with
`createAlibaba({ videoBaseURL: <gateway> })`, run by Node as a subprocess against the gateway on
127.0.0.1. The SDK validates the task answer strictly (`usage.SR` must be a number) and sends the image as
raw base64 in `img_url`, with an `idempotency-key` header of its own.

Without Node or the installed packages the test is skipped on a developer's machine and fails under
CI=true, where they must be there.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Served, make_settings, serve
from tests.helpers import image_bytes

PROJECT = REPO / "tests" / "compat" / "vercel"
KEY = "carol-key-" + "c" * 32


def _node() -> str:
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed (Node 20+)"
    elif not (PROJECT / "node_modules" / "@ai-sdk" / "alibaba").is_dir():
        missing = f"the Vercel AI SDK is not installed: run `make install` (npm ci --prefix {PROJECT})"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    assert node is not None
    return node


@pytest.fixture
async def facade(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    settings = make_settings(tmp_path, database_url, workers_enabled=True, gateway_api_keys=f"carol:{KEY}")
    async with serve(settings) as served:
        yield served


async def test_experimental_generate_video_through_the_facade(facade: Served, tmp_path: Path) -> None:
    node = _node()
    image, out = tmp_path / "cat.png", tmp_path / "video.mp4"
    image.write_bytes(image_bytes(640, 360))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "GATEWAY_URL": facade.url,
        "GATEWAY_KEY": KEY,
        "IMAGE": str(image),
        "OUT": str(out),
    }
    process = await asyncio.create_subprocess_exec(
        node,
        str(PROJECT / "generate.mjs"),
        cwd=PROJECT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode(errors="replace")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["mediaType"] == "video/mp4"
    assert out.read_bytes()[4:8] == b"ftyp" and result["bytes"] == out.stat().st_size
    task_id = result["alibaba"]["taskId"]
    assert result["alibaba"]["videoUrl"].startswith(f"{facade.url}/v1/links/{task_id}/video?expires=")
    assert result["alibaba"]["usage"]["resolution"] == 720  # `SR`, a number
    # An ordinary job underneath, created under the SDK's own Idempotency-Key.
    facade.headers = {"Authorization": f"Bearer {KEY}"}
    job = await facade.job(task_id)
    assert job["status"] == "succeeded" and job["request"]["duration"] == 2
