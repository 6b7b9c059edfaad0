"""The client CLI (`wan-gateway generate`, `jobs …`, `--version`) as a user runs it: the installed
`wan-gateway` script in child processes against a live gateway on loopback (its real loops and embedded
sandbox), and the progress views fed a stream of jobs.

Each child start costs ~1–2 s of imports, so the children of a step run side by side."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import httpx
import pytest
from rich.console import Console

from app.cli import main
from app.client.common import GatewayError
from app.client.follow import follow
from app.client.generate import submit
from app.client.progress import BarView, PlainView
from tests.conftest import Served, make_settings, serve
from tests.helpers import image_bytes, wait_for
from tests.tcpproxy import tcp_proxy

KEY = "cli-test-key-0123456789abcdef0123"
WAN_GATEWAY = Path(sys.executable).with_name("wan-gateway")
FAIL = "[sandbox:FAILED/DataInspectionFailed]"


@dataclass
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def cli(*args: str | Path, env: dict[str, str], cwd: Path) -> Done:
    process = await asyncio.create_subprocess_exec(
        WAN_GATEWAY, *map(str, args), env=env, cwd=cwd, stdout=-1, stderr=-1
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


@contextlib.asynccontextmanager
async def interrupted_once(
    *args: str | Path, env: dict[str, str], cwd: Path, when: str
) -> AsyncIterator[asyncio.Future[Done]]:
    """A child that gets SIGINT (Ctrl-C) once its output shows `when`; yields a future of its `Done`."""
    process = await asyncio.create_subprocess_exec(
        WAN_GATEWAY, *map(str, args), env=env, cwd=cwd, stdout=-1, stderr=-1
    )
    assert process.stdout is not None and process.stderr is not None

    async def run() -> Done:
        assert process.stdout is not None and process.stderr is not None
        seen: list[str] = []
        async with asyncio.timeout(90):
            while when not in (line := (await process.stdout.readline()).decode()):
                assert line, f"exited before {when!r}: {''.join(seen)}"
                seen.append(line)
            process.send_signal(signal.SIGINT)
            out, err = await process.communicate()
        return Done(await process.wait(), "".join(seen) + line + out.decode(), err.decode())

    try:
        yield asyncio.ensure_future(run())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.slow
@pytest.mark.one_database(reason="api client")
async def test_generate_follows_the_job_and_saves_a_playable_mp4(tmp_path: Path, database_url: str) -> None:
    """The one end-to-end run: a local PNG uploaded, the job followed to `succeeded` and its MP4 saved
    (exit 0); a failing job's codes printed (exit 1); `--no-wait --json`; `jobs cancel|list|show|
    download`; refusals (401, a 422 naming the field) are exit 3; Ctrl-C leaves the job running (130)."""
    settings = make_settings(tmp_path, database_url, gateway_api_keys=f"alice:{KEY}", workers_enabled=True)
    async with serve(settings) as served:
        served.headers = {"Authorization": f"Bearer {KEY}"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAN_GATEWAY_")}
        env |= {"WAN_GATEWAY_URL": served.url, "WAN_GATEWAY_KEY": KEY, "COLUMNS": "200"}
        png = tmp_path / "cat.png"
        png.write_bytes(image_bytes(640, 360))

        def run(*args: str | Path, **extra: str) -> Any:
            return cli(*args, env={**env, **extra}, cwd=tmp_path)

        # Submitted and left (a task PENDING for minutes upstream); refusals; the version.
        later, unauthorized, invalid = await asyncio.gather(
            run("generate", png, "--prompt", "later [sandbox:slow/5000]", "--no-wait", "--json"),
            run("jobs", "list", "--key", "wrong-key-0123456789abcdef0123456"),
            run("generate", "https://images.example/cat.png", "--prompt", "x", "--duration", "99"),
        )
        assert later.code == 0, later.err
        queued = later.json()
        assert queued["status"] == "queued"
        # The file was uploaded: the gateway describes the image it checked (never echoes its bytes).
        described = queued["request"]["reference_image"]
        assert described["sha256"] == hashlib.sha256(png.read_bytes()).hexdigest(), described
        assert (unauthorized.code, unauthorized.out) == (3, "")
        assert "401 invalid_api_key" in unauthorized.err
        assert invalid.code == 3 and "422" in invalid.err and "(field: duration)" in invalid.err

        canceled, ok, failed = await asyncio.gather(
            run("jobs", "cancel", queued["id"]),
            run("generate", png, "--prompt", "a cat", "--duration", "2", "--size", "1280x720",
                "--seed", "7", "--out", "cat.mp4"),
            run("generate", png, "--prompt", f"a dog {FAIL}", "--duration", "2", "--json"),
        )  # fmt: skip
        assert (canceled.code, canceled.out) == (0, f"{queued['id']} canceled\n"), canceled.err

        # Plain lines (stdout is a pipe), in order, then the file.
        assert ok.code == 0, ok.err
        statuses = [line.split()[1] for line in ok.out.splitlines() if line.startswith("job_")]
        assert statuses[0] == "queued" and statuses[-1] == "succeeded", ok.out
        assert statuses == sorted(
            statuses, key=["queued", "submitted", "running", "storing", "succeeded"].index
        )
        job_id = ok.out.splitlines()[0].split()[0]
        assert ok.out.splitlines()[-1].startswith(f"saved cat.mp4: {job_id}, 1280x720, 2.0 s")
        with av.open(str(tmp_path / "cat.mp4")) as container:
            video = container.streams.video[0]
            assert (video.codec_context.name, video.width, video.height) == ("h264", 1280, 720)
            assert container.duration is not None and abs(container.duration / 1e6 - 2) < 0.2
            assert sum(1 for _ in container.decode(video)) >= 50
        assert not [name for name in os.listdir(tmp_path) if name.endswith(".part")]

        # The failure: its codes on stderr, the final job on stdout (progress went to stderr).
        assert failed.code == 1
        job = failed.json()
        assert job["status"] == "failed" and job["error"]["upstream_code"] == "DataInspectionFailed"
        assert (
            f"wan-gateway generate: {job['id']} failed: upstream_failed (DashScope DataInspectionFailed): "
            "Output data may contain inappropriate content." in failed.err
        )
        assert f"{job['id']} queued" in failed.err

        async with interrupted_once(
            "generate", png, "--prompt", "forever [sandbox:stuck]", env=env, cwd=tmp_path, when="running"
        ) as stuck:
            listing, shown, download, not_yet = await asyncio.gather(
                run("jobs", "list", "--status", "succeeded", "--status", "failed"),
                run("jobs", "show", job["id"]),
                run("jobs", "download", job_id, "--out", "again.mp4"),
                run("jobs", "download", job["id"]),
            )
            interrupted = await stuck
        rows = [line.split() for line in listing.out.splitlines()]
        assert rows[0] == ["ID", "STATUS", "MODEL", "CREATED", "PROGRESS", "DETAIL"]
        listed = {r[0]: (r[1], r[-2:]) for r in rows[1:]}
        assert listed == {
            job["id"]: ("failed", ["upstream_failed", "(DataInspectionFailed)"]),
            job_id: ("succeeded", ["2.0", "s"]),
        }
        assert "error:            upstream_failed (DashScope DataInspectionFailed)" in shown.out
        size = (tmp_path / "cat.mp4").stat().st_size
        assert download.code == 0 and download.out.endswith(f"saved again.mp4 ({size} bytes)\n")
        assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "cat.mp4").read_bytes()
        assert not_yet.code == 1 and "no video to download" in not_yet.err

        assert interrupted.code == 130, interrupted
        running_id = interrupted.out.split()[0]
        assert f"jobs show {running_id}" in interrupted.err
        assert (await served.job(running_id))["status"] == "running"  # left running


ORDER = ["queued", "submitted", "running", "storing", "succeeded"]


class Seen:
    """A view that records each job it is shown."""

    def __init__(self) -> None:
        self.statuses: list[str] = []

    def __enter__(self) -> Seen:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, job: dict[str, Any]) -> None:
        self.statuses.append(job["status"])

    def note(self, text: str) -> None:
        return None


@pytest.mark.one_database(reason="api client")
async def test_a_dropped_stream_is_resumed_after_the_last_event(gateway: Served, png_uri: str) -> None:
    """The connection to the gateway is cut after `submitted` was shown: the follower reconnects with
    Last-Event-ID (a replay from the start would show `queued` again) and sees the job to its end."""
    job_id = await gateway.submit(png_uri)
    url = urlsplit(gateway.url)
    assert url.hostname is not None and url.port is not None
    async with tcp_proxy(url.hostname, url.port) as proxy:
        seen = Seen()
        with httpx.Client(base_url=f"http://127.0.0.1:{proxy.port}", timeout=10) as http:
            following = asyncio.ensure_future(
                asyncio.to_thread(follow, http, await gateway.job(job_id), seen)
            )
            await gateway.drive(job_id, "submitted", "running")
            await wait_for(lambda: _shown(seen, "submitted", "running"), within=30, what="the event shown")
            await proxy.cut()
            await proxy.restore()
            await gateway.drive(job_id, "succeeded")
            final = await asyncio.wait_for(following, 30)
    assert final["status"] == "succeeded" and seen.statuses[-1] == "succeeded"
    assert seen.statuses == sorted(seen.statuses, key=ORDER.index), seen.statuses


async def _shown(seen: Seen, *statuses: str) -> bool:
    return any(status in seen.statuses for status in statuses)


def _jobs(*steps: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": "job_1", "status": "queued", "progress": None, **step} for step in steps]


STEPS = _jobs(
    {"progress": 0, "queue_position": 3, "eta": "2026-12-02T05:01:40Z"},
    {"progress": 0, "queue_position": 3},  # same line: not printed again
    {"progress": 0, "queue_position": 1},
    {"status": "running", "progress": 42, "eta": "2026-12-02T05:01:10Z"},
    {"status": "running", "progress": 47},  # same ten: not printed again
    {"status": "succeeded", "progress": 100},
)


def test_progress_views_show_status_queue_position_and_eta(capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime(2026, 12, 2, 5, 0, 0, tzinfo=UTC)
    plain = io.StringIO()
    with PlainView(plain, clock=lambda: now) as view:
        for job in STEPS:
            view.update(job)
    assert plain.getvalue().splitlines() == [
        "job_1 queued 0% · 3rd in queue · ETA 05:01:40Z (in 1 min 40 s)",
        "job_1 queued 0% · next in queue",
        "job_1 running 42% · ETA 05:01:10Z (in 1 min 10 s)",
        "job_1 succeeded 100%",
    ]
    # On a terminal: one bar, redrawn in place, that ends full.
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, record=True)
    with BarView(console, clock=lambda: now, auto_refresh=False) as bar:
        for job in STEPS[:4]:
            bar.update(job)
            assert "job_1" in console.export_text(clear=False)
        frame = console.export_text()
        assert "running · ETA 05:01:10Z (in 1 min 10 s)" in frame and "42%" in frame
        bar.update(STEPS[-1])
    assert "succeeded" in screen.getvalue() and "100%" in screen.getvalue()

    # --version: the installed package's metadata.
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"wan-gateway {metadata.version('wan-gateway')}\n"


def test_a_retried_submit_sends_the_same_idempotency_key() -> None:
    """A dropped connection and a `409 idempotency_key_in_progress` are retried with the key of the first
    attempt (the gateway then answers the job that attempt made); a 422 is not retried."""
    keys: list[str] = []
    answers: list[httpx.Response | Exception] = [
        httpx.ConnectError("connection reset"),
        httpx.Response(409, json={"code": "idempotency_key_in_progress"}, headers={"Retry-After": "0"}),
        httpx.Response(202, json={"id": "job_1", "status": "queued"}),
        httpx.Response(422, json={"code": "validation_error", "detail": "bad", "field": "duration"}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    waits: list[float] = []
    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gateway") as http:
        job = submit(http, {"prompt": "a cat"}, {}, "key-1", sleep=waits.append)
        assert job == {"id": "job_1", "status": "queued"}
        assert keys == ["key-1"] * 3 and waits == [0.5, 0.0]
        with pytest.raises(GatewayError, match=r"^422 validation_error: bad \(field: duration\)$"):
            submit(http, {"prompt": "a cat"}, {}, "key-2", sleep=waits.append)
    assert keys[-1] == "key-2" and len(keys) == 4
