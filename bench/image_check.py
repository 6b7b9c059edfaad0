"""What checking a hostile reference image costs the gateway: each image is POSTed to /v1/jobs as a data:
URI on a gateway served in this process (uvicorn on 127.0.0.1, its sandbox, SQLite), while a task on the
same event loop ticks every 5 ms. Printed per image: the answer, the time to answer, and the event loop's
worst lag meanwhile (how long every other request on this process had to wait).

    .venv/bin/python bench/image_check.py               # the code in this tree
    .venv/bin/python bench/image_check.py --rev d71b311 # the same against app/ as of a git revision

With --rev, `app/` (and the migrations) of that revision are exported to a temporary directory and the
script runs again in a subprocess that imports them instead; the images come from tests/hostile_images.py.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICK_S = 0.005


def images() -> list[tuple[str, Callable[[], bytes], str]]:
    from PIL import Image

    from tests import hostile_images as hostile

    def normal() -> bytes:
        buffer = io.BytesIO()
        Image.frombytes("RGB", (2000, 2000), os.urandom(2000 * 2000 * 3)).save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    return [
        ("normal JPEG 2000x2000", normal, "image/jpeg"),
        ("JPEG + 2.5 M markers", hostile.marker_flood_jpeg, "image/jpeg"),
        ("EPS sent as image/png", hostile.eps, "image/png"),
        ("bomb PNG 30000x30000", hostile.bomb_png, "image/png"),
        ("truncated JPEG 2000²", lambda: normal()[:1_500_000], "image/jpeg"),
        ("progressive scan flood", hostile.scan_flood_jpeg, "image/jpeg"),
        ("PNG + 800 k empty IDAT", hostile.chunk_flood_png, "image/png"),
    ]


class LagMeter:
    """A task that wakes every TICK_S; `worst` is the longest it was late since `reset()`."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.worst = 0.0

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.worst = max(self.worst, time.perf_counter() - before - TICK_S)

    def __enter__(self) -> LagMeter:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


@contextlib.asynccontextmanager
async def served_gateway(folder: Path) -> AsyncIterator[str]:
    import uvicorn

    from app.config import Settings
    from app.main import create_app
    from app.sandbox.settings import SandboxSettings

    database_url = f"sqlite+aiosqlite:///{folder / 'gateway.db'}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        dashscope_sandbox=True,
        dashscope_credentials_file=folder / "no-credentials",
        output_dir=folder / "output",
        sandbox=SandboxSettings(_env_file=None, state_path=folder / "sandbox.db"),
        workers_enabled=False,
        public_base_url=base_url,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="error", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield base_url
    finally:
        server.should_exit = True
        await task
        sock.close()


async def measure(label: str, folder: Path) -> None:
    import httpx

    async with (
        served_gateway(folder) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=120) as client,
    ):
        print(f"{label}\n{'image':24} {'bytes':>10}  {'answer':58} {'time':>7} {'loop lag':>9}")
        with LagMeter() as lag:
            await asyncio.sleep(1.0)
            print(f"{'(idle, 1 s)':24} {'':>10}  {'':58} {'':>7} {lag.worst * 1000:7.0f}ms")
            for name, build, mime in images():
                data = build()
                body = {
                    "prompt": "a cat",
                    "reference_image": f"data:{mime};base64," + base64.b64encode(data).decode(),
                }
                await asyncio.sleep(0.2)
                lag.reset()
                start = time.perf_counter()
                response = await client.post("/v1/jobs", json=body)
                took = time.perf_counter() - start
                answer = f"{response.status_code} {_detail(response)}"
                print(f"{name:24} {len(data):>10}  {answer[:58]:58} {took:6.2f}s {lag.worst * 1000:7.0f}ms")


def _detail(response: object) -> str:
    import httpx

    assert isinstance(response, httpx.Response)
    if response.status_code == 202:
        return "accepted"
    try:
        detail = str(response.json().get("detail", ""))
    except ValueError:
        detail = response.text
    return detail.removeprefix("reference_image: ")


def run_revision(rev: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "app", "migrations", "alembic.ini"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        subprocess.run(
            [sys.executable, __file__, "--app-from", folder, "--label", f"app/ at {rev}"], check=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", help="measure app/ as of this git revision instead of this tree")
    parser.add_argument("--app-from", help=argparse.SUPPRESS)  # where run_revision exported app/
    parser.add_argument("--label", default="app/ in this tree", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rev:
        run_revision(args.rev)
        return
    sys.path[:0] = [args.app_from, str(REPO)] if args.app_from else [str(REPO)]
    from app.db.migrate import upgrade_head

    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        upgrade_head(
            f"sqlite+aiosqlite:///{Path(folder) / 'gateway.db'}"
        )  # before the loop: alembic runs its own
        asyncio.run(measure(args.label, Path(folder)))


if __name__ == "__main__":
    main()
