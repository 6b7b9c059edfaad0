"""Helpers for the sandbox tests: a DashScope client, task polling, MP4 probing, a loopback file host."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import av
import httpx

from app.sandbox.server import SandboxServer
from tests.helpers import data_uri, wait_for

API_KEY = "sk-sandbox"
I2V_PATH = "/services/aigc/video-generation/video-synthesis"
KF2V_PATH = "/services/aigc/image2video/video-synthesis"
ASYNC = {"X-DashScope-Async": "enable"}
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"})


#: Building a TLS context costs ~40 ms per httpx client; the tests make hundreds of (plain HTTP) clients.
TLS = ssl.create_default_context()


def client_for(server: SandboxServer, key: str | None = API_KEY) -> httpx.AsyncClient:
    """A client of the sandbox's DashScope API (base URL .../api/v1), authenticated unless key is None."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        base_url=server.base_url, headers=headers, timeout=30.0, trust_env=False, verify=TLS
    )


#: One 1280x720 PNG for every test that does not care about the image.
IMAGE = data_uri()


def path_for(model: str) -> str:
    return KF2V_PATH if "kf2v" in model else I2V_PATH


def body_for(model: str, image: str = IMAGE, **parameters: Any) -> dict[str, Any]:
    field = "first_frame_url" if "kf2v" in model else "img_url"
    return {"model": model, "input": {"prompt": "a cat running", field: image}, "parameters": parameters}


async def create(client: httpx.AsyncClient, model: str = "wan2.2-i2v-flash", **kwargs: Any) -> str:
    """Create a task (asserting success) and return its id. kwargs go to body_for."""
    response = await client.post(path_for(model), headers=ASYNC, json=body_for(model, **kwargs))
    assert response.status_code == 200, response.text
    return str(response.json()["output"]["task_id"])


async def task(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_status(
    client: httpx.AsyncClient,
    task_id: str,
    statuses: Iterable[str] | str = TERMINAL,
    within: float = 15.0,
) -> dict[str, Any]:
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)

    async def probe() -> dict[str, Any] | None:
        body = await task(client, task_id)
        return body if body["output"]["task_status"] in wanted else None

    return await wait_for(probe, within=within, what=f"task {task_id} in {sorted(wanted)}")


def probe(path: Path) -> dict[str, Any]:
    """What PyAV reads from an MP4: video geometry, codec, timing, and the audio codecs."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio
        assert video.duration is not None
        assert video.time_base is not None
        return {
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "fps": video.average_rate,
            "frames": video.frames,
            "duration": float(video.duration * video.time_base),
            "audio": [stream.codec_context.name for stream in audio],
        }


def assert_error(response: httpx.Response, status: int, code: str, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    if message is not None:
        assert body["message"] == message, body
    assert len(body["request_id"]) == 36


@asynccontextmanager
async def file_host(payload: bytes, content_type: str = "image/png") -> AsyncIterator[str]:
    """A loopback HTTP server answering every request with `payload`; yields its base URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
