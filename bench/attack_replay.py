"""Replay issue 9's attacks against a real gateway process and show its done criterion: no 5xx from client
input, no event-loop stall over a second, no silent loss.

    .venv/bin/python bench/attack_replay.py                      # every attack, under a minute
    .venv/bin/python bench/attack_replay.py --only slowloris     # one attack (or a group: --only image)
    .venv/bin/python bench/attack_replay.py --list               # the attacks, in the order they run
    .venv/bin/python bench/attack_replay.py --gateway-tree /tmp/old   # serve app/ of another checkout
    scripts/with-postgres.sh sh -c \
        '.venv/bin/python bench/attack_replay.py --database-url "$TEST_DATABASE_URL"'  # on Postgres

The gateway runs as `wan-gateway serve` does (`python -m app.cli serve`: migrations, then the app on uvicorn
through `app/serving.py`) in a subprocess on 127.0.0.1 and a free port: SQLite (or `--database-url`) and
local storage in a temporary directory, the embedded sandbox, two tenants' client keys, private URLs
allowed (the image server, webhook receivers and tarpit of this script listen on 127.0.0.1), and short
timings (sandbox tasks, polls, leases, HEADER_TIMEOUT_S = BODY_TIMEOUT_S = 2 s, WEBHOOK_TIMEOUT_S = 3 s).
A second subprocess requests `/healthz` every 20 ms on a keep-alive connection and records each answer's
latency: the worst one while an attack ran is how long the gateway's event loop could not answer anyone.
The load comes from this process, so it never shares the gateway's loop.

Per attack: the HTTP statuses the gateway answered, the 5xx among them, the worst /healthz latency, and a
verdict — `ok`, `FAIL` with why, or `n/a` (what the attack needs is not in this tree, e.g. the sandbox's
`nul` fault). Then one JSON line. The exit status is 1 when any verdict is FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from starlette.responses import Response  # noqa: E402

from tests import hostile_images as hostile  # noqa: E402
from tests.helpers import data_uri  # noqa: E402
from tests.imageserver import Body, image_server  # noqa: E402
from tests.receiver import receiver  # noqa: E402

CLIP_CACHE = REPO / ".cache" / "sandbox-clips"
ALPHA_KEY = "wg_replay-alpha-" + "a1b2c3d4" * 4  # tenant "alpha"
BRAVO_KEY = "wg_replay-bravo-" + "e5f6a7b8" * 4  # tenant "bravo"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"attack-replay-webhook-secret-32b").decode()
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
WEBHOOK_TIMEOUT_S = 3.0
LEASE_S = 2.0
PROBE_INTERVAL_S = 0.02
STALL_LIMIT_MS = 1000.0
MB = 1_000_000
#: A 640x360 PNG: a fine 16:9 reference image for 720P jobs.
PNG = data_uri(640, 360)
JOB: dict[str, Any] = {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": PNG}
TERMINAL = ("succeeded", "failed", "canceled")
#: An absolute path in a message (what a client must never be shown).
SERVER_PATH = re.compile(r"(^|[\s'\"(])/[\w.-]+/")


#: What a raw socket got: a status, or one of these.
Answer = int | str
CLOSED = "closed"  # the server closed the connection without an answer
SILENT = "silent"  # no answer, and the connection still open, after WAIT_S
WAIT_S = 15.0


class AttackError(Exception):
    """The attack cannot go on (the reason is its verdict)."""


# --- the gateway process ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_env(folder: Path, database_url: str, tree: Path | None) -> dict[str, str]:
    from app.config import environment

    ours = set(environment())
    return {
        **{k: v for k, v in os.environ.items() if k not in ours and k != "PYTHONPATH"},
        # --gateway-tree: the gateway's `app` (and its migrations) come from another checkout.
        **({"PYTHONPATH": str(tree)} if tree is not None else {}),
        "DATABASE_URL": database_url,
        "DASHSCOPE_SANDBOX": "true",
        "DASHSCOPE_CREDENTIALS_FILE": str(folder / "no-credentials"),
        "OUTPUT_DIR": str(folder / "output"),  # local storage: $OUTPUT_DIR/ai-video-wan-video/videos
        "SANDBOX_STATE_PATH": str(folder / "sandbox.db"),
        "SANDBOX_CLIP_CACHE_DIR": str(CLIP_CACHE),
        "SANDBOX_PENDING_S": "0.2",
        "SANDBOX_RUNNING_S": "0.5",
        "POLL_MIN_INTERVAL_S": "0.1",
        "POLL_MAX_INTERVAL_S": "0.3",
        "RECONCILE_GRACE_S": "1.0",
        "LEASE_S": str(LEASE_S),  # kill -9: the dead process's claims lapse quickly
        "SHUTDOWN_GRACE_S": "2",
        "ALLOW_PRIVATE_URLS": "true",
        "HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "WEBHOOK_TIMEOUT_S": str(WEBHOOK_TIMEOUT_S),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GATEWAY_API_KEYS": f"alpha:{ALPHA_KEY},bravo:{BRAVO_KEY}",
        # The per-minute quota would answer 429 to the ~60 submits of a run; it is not what is replayed.
        "QUOTA_SUBMITS_PER_MINUTE": "0",
        "LOG_LEVEL": "INFO",
    }


class GatewayProcess:
    """`wan-gateway serve` in a subprocess; its stdout and stderr go to one log file."""

    def __init__(self, folder: Path, database_url: str, tree: Path | None) -> None:
        self.folder = folder
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "gateway.log"
        self.env = gateway_env(folder, database_url, tree)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                cwd=self.folder,  # no developer .env is read
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_up(self, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"the gateway exited ({self.proc.returncode}):\n{self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the gateway did not start within {within:g} s:\n{self.tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{self.pid}/status").read_text(), re.MULTILINE)
        assert match is not None
        return int(match[1]) / 1024

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


# --- the /healthz prober ------------------------------------------------------------------------------------


def probe_forever(port: int, samples: Path) -> None:
    """(In its own process.) GET /healthz every PROBE_INTERVAL_S on a keep-alive connection; one line per
    request: monotonic time sent, time answered, status (0: no answer — the gateway is down)."""
    connection: http.client.HTTPConnection | None = None
    with samples.open("a", buffering=1) as out:
        while True:
            sent = time.monotonic()
            status = 0
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                connection.request("GET", "/healthz")
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
            done = time.monotonic()
            out.write(f"{sent:.6f} {done:.6f} {status}\n")
            time.sleep(max(0.0, sent + PROBE_INTERVAL_S - time.monotonic()))


@dataclass
class Sample:
    sent: float
    done: float
    status: int

    @property
    def ms(self) -> float:
        return (self.done - self.sent) * 1000


class Prober:
    """The prober process and what it recorded."""

    def __init__(self, port: int, folder: Path) -> None:
        self.samples = folder / "healthz.samples"
        self.samples.touch()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--probe", str(port), str(self.samples)], cwd=folder
        )

    def read(self) -> list[Sample]:
        rows = []
        for line in self.samples.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                rows.append(Sample(float(parts[0]), float(parts[1]), int(parts[2])))
        return rows

    async def settle(self, after: float, within: float = 30.0) -> None:
        """Wait until a probe sent after `after` has come back: a stall that outlasts an attack is seen."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if any(s.sent >= after for s in self.read()[-50:]):
                return
            await asyncio.sleep(PROBE_INTERVAL_S)

    def window(
        self, start: float, end: float, excluded: list[tuple[float, float]]
    ) -> tuple[float | None, int]:
        """Worst latency (ms) of the answered probes overlapping [start, end] outside `excluded`, and the
        number of probes not answered."""
        worst: float | None = None
        unanswered = 0
        next_one = True  # the first probe sent after the end counts too (a short attack may have none)
        for sample in self.read():
            if sample.done < start:
                continue
            if sample.sent > end:
                if not next_one:
                    continue
                next_one = False
            if any(sample.sent < hi and sample.done > lo for lo, hi in excluded):
                continue
            if sample.status == 0:
                unanswered += 1
                continue
            worst = sample.ms if worst is None else max(worst, sample.ms)
        return worst, unanswered

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# --- one attack's record ------------------------------------------------------------------------------------


@dataclass
class Record:
    name: str
    answers: Counter[str] = field(default_factory=Counter)
    five_xx: int = 0
    #: 5xx answers the attack expects (a database that is gone is a 503, not client input).
    expected_5xx: frozenset[int] = frozenset()
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None
    #: Stretches when the gateway is down on purpose (kill -9): not a stall.
    excluded: list[tuple[float, float]] = field(default_factory=list)
    worst_ms: float | None = None

    def saw(self, answer: Answer) -> None:
        self.answers[str(answer)] += 1
        if isinstance(answer, int) and answer >= 500 and answer not in self.expected_5xx:
            self.five_xx += 1

    def check(self, condition: bool, why: str) -> bool:
        if not condition:
            self.failures.append(why)
        return condition

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def verdict(self) -> str:
        why = list(self.failures)
        if self.five_xx:
            why.insert(0, f"{self.five_xx} × 5xx")
        if self.worst_ms is not None and self.worst_ms > STALL_LIMIT_MS:
            why.append(f"/healthz waited {self.worst_ms:.0f} ms")
        if why:
            return "FAIL: " + "; ".join(why)
        if self.unavailable:
            return f"n/a: {self.unavailable}"
        return "ok"

    @property
    def failed(self) -> bool:
        return self.verdict.startswith("FAIL")

    def answers_text(self) -> str:
        def order(item: tuple[str, int]) -> tuple[int, str]:
            return (0 if item[0].isdigit() else 1, item[0])

        return " ".join(f"{k}×{n}" if n > 1 else k for k, n in sorted(self.answers.items(), key=order)) or "-"


def problem_field(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("field") if isinstance(body, dict) else None
    return str(value) if value is not None else None


def problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("code") if isinstance(body, dict) else None
    return str(value) if value is not None else None


# --- the replay: the gateway, its clients, and what every attack shares ---------------------------------


class Replay:
    """The gateway under attack, a client per tenant (and one without a key), and what attacks share."""

    def __init__(self, folder: Path, database_url: str, tree: Path | None) -> None:
        self.folder = folder
        self.database_url = database_url
        self.gateway = GatewayProcess(folder, database_url, tree)
        self.alpha = self._client(ALPHA_KEY)
        self.bravo = self._client(BRAVO_KEY)
        self.anon = self._client(None)
        #: Every job the gateway accepted (202), by id: its tenant's client. None may be lost.
        self.accepted: dict[str, httpx.AsyncClient] = {}
        self._shared_job: str | None = None
        self.prober: Prober | None = None
        #: tests.tcpproxy.TcpProxy between the gateway and a database server (cut() and restore()).
        self.database_proxy: Any = None
        #: The gateway's sandbox task faults (asked before the measuring starts): `nul`, `corrupt`, …
        self.task_faults: set[str] = set()

    def _client(self, key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.gateway.url, headers=headers, timeout=60)

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite+aiosqlite:///"
        return Path(self.database_url.removeprefix(prefix)) if self.database_url.startswith(prefix) else None

    async def start_database_proxy(self) -> None:
        """A database server is reached through a TCP proxy that the db-outage attack cuts (tests/tcpproxy.py;
        without it in this tree, straight)."""
        if self.sqlite_path is not None:
            return
        try:
            tcpproxy: Any = importlib.import_module("tests.tcpproxy")
        except ImportError:
            return
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url)
        self.database_proxy = tcpproxy.TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        await self.database_proxy.start()
        through = url.set(host="127.0.0.1", port=self.database_proxy.port)
        self.gateway.env["DATABASE_URL"] = through.render_as_string(hide_password=False)

    async def close(self) -> None:
        for client in (self.alpha, self.bravo, self.anon):
            await client.aclose()

    async def request(
        self, record: Record, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await client.request(method, path, **kwargs)
        except (httpx.ReadError, httpx.RemoteProtocolError) as error:
            # The server closed a kept-alive connection under the request (uvicorn does after a 500):
            # a GET or HEAD is asked again on a new connection, as clients do.
            record.saw(CLOSED)
            record.note(f"{method} {path[:20]}: a kept-alive connection closed under it")
            if method not in ("GET", "HEAD"):
                raise AttackError(f"{method} {path}: the connection closed ({error!r})") from error
            response = await client.request(method, path, **kwargs)
        record.saw(response.status_code)
        return response

    async def submit(self, record: Record, client: httpx.AsyncClient, **fields: Any) -> str:
        response = await self.request(record, client, "POST", "/v1/jobs", json={**JOB, **fields})
        if response.status_code != 202:
            raise AttackError(f"a valid job was answered {response.status_code}: {response.text[:200]}")
        job_id: str = response.json()["id"]
        self.accepted[job_id] = client
        return job_id

    async def job(self, record: Record, client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
        response = await self.request(record, client, "GET", f"/v1/jobs/{job_id}")
        if response.status_code != 200:
            raise AttackError(f"GET {job_id} answered {response.status_code}: {response.text[:200]}")
        body: dict[str, Any] = response.json()
        return body

    async def finished(
        self, record: Record, client: httpx.AsyncClient, ids: list[str], within: float = 60.0
    ) -> dict[str, dict[str, Any]]:
        """Wait until every job is terminal; AttackError naming those still running after `within`."""
        deadline = time.monotonic() + within
        done: dict[str, dict[str, Any]] = {}
        while True:
            for job_id in [i for i in ids if i not in done]:
                job = await self.job(record, client, job_id)
                if job["status"] in TERMINAL:
                    done[job_id] = job
            if len(done) == len(ids):
                return done
            if time.monotonic() > deadline:
                stuck = [i for i in ids if i not in done]
                raise AttackError(f"{len(stuck)} job(s) not finished within {within:g} s: {', '.join(stuck)}")
            await asyncio.sleep(0.1)

    async def shared_job(self, record: Record) -> str:
        """A succeeded job of tenant alpha, with one webhook delivery (made once, by whichever attack
        needs it first)."""
        if self._shared_job is None:
            async with receiver(WEBHOOK_SECRET) as hook:
                job_id = await self.submit(record, self.alpha, webhook_url=hook.url)
                job = (await self.finished(record, self.alpha, [job_id]))[job_id]
                if job["status"] != "succeeded":
                    raise AttackError(f"the shared job {job_id} ended {job['status']}: {job['error']}")
                await until(lambda: bool(hook.delivered), within=30, what="the shared job's webhook")
            self._shared_job = job_id
        return self._shared_job

    async def restart(self, *, kill: bool) -> float:
        """Kill -9 (or stop) the gateway and start it again on the same port and database; seconds down."""
        start = time.monotonic()
        if kill:
            self.gateway.kill9()
        else:
            self.gateway.stop()
        self.gateway.start()
        await self.gateway.wait_up()
        return time.monotonic() - start


async def until(condition: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AttackError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.05)


# --- raw sockets --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def raw(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_status(reader: asyncio.StreamReader, within: float) -> tuple[Answer, bytes]:
    """The status and body of one answer; CLOSED when the server closed without one, SILENT when nothing
    came within `within` seconds."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within)
    except (asyncio.IncompleteReadError, ConnectionError):
        return CLOSED, b""
    except TimeoutError:
        return SILENT, b""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = b""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), within)
    return int(status_line.split()[1]), body


async def endless_head(port: int, total: int, *, stop_at_answer: bool) -> tuple[Answer, int, float]:
    """Send a GET whose header never ends, up to `total` bytes (or until answered); the answer, the bytes
    sent, the seconds to the answer."""
    chunk = b"a" * (64 * 1024)
    async with raw(port) as (reader, writer):
        start = time.monotonic()
        answer = asyncio.create_task(read_status(reader, within=WAIT_S))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Endless: ")
        sent = 0
        with contextlib.suppress(OSError):
            while sent < total and not (stop_at_answer and answer.done()):
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        status, _ = await answer
        return status, sent, time.monotonic() - start


# --- the attacks ------------------------------------------------------------------------------------------

Attack = Callable[[Replay, Record], Awaitable[None]]


def image_attack(build: Callable[[], bytes], mime: str) -> Attack:
    async def attack(replay: Replay, record: Record) -> None:
        data = build()
        uri = f"data:{mime};base64," + base64.b64encode(data).decode()
        body = json.dumps({**JOB, "reference_image": uri}).encode()
        start = time.monotonic()
        response = await replay.request(
            record,
            replay.alpha,
            "POST",
            "/v1/jobs",
            content=body,
            headers={"content-type": "application/json"},
        )
        took = time.monotonic() - start
        record.note(f"{len(data) / MB:.1f} MB, answered in {took:.2f} s")
        expect_field_422(record, response, "reference_image")

    return attack


def expect_field_422(record: Record, response: httpx.Response, name: str) -> None:
    got = (
        "202 (accepted)"
        if response.status_code == 202
        else f"{response.status_code} {problem_code(response)}"
    )
    if record.check(response.status_code == 422, f"{got}, not 422"):
        field_name = problem_field(response)
        record.check(field_name == name, f"the 422 names {field_name!r}, not {name!r}")
        record.note(str(response.json().get("detail", ""))[:70])


async def attack_bomb_url(replay: Replay, record: Record) -> None:
    bomb = hostile.bomb_png()
    routes = {"/bomb.png": Body(bomb, headers=(("Content-Type", "image/png"),))}
    async with image_server(routes) as server:
        response = await replay.request(
            record, replay.alpha, "POST", "/v1/jobs", json={**JOB, "reference_image": server.url("/bomb.png")}
        )
        record.check(server.paths == ["/bomb.png"], f"the image server saw {server.paths}")
    expect_field_422(record, response, "reference_image")


def cursor_of(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


async def attack_cursor(replay: Replay, record: Record) -> None:
    cursors = {
        "forged +14:00 offset": cursor_of(b"0001-01-01T00:00:00+14:00|job_abc"),
        "year 9999 -14:00": cursor_of(b"9999-12-31T23:59:59-14:00|job_abc"),
        "not base64": "%%%",
        "base64 garbage": cursor_of(b"garbage"),
        "no date": cursor_of(b"not-a-date|job_x"),
        "no id": cursor_of(b"2024-01-01T00:00:00+00:00|"),
        "not UTF-8": cursor_of(b"\xff\xfe|\x80"),
        "10,000 chars": "A" * 10_000,
    }
    for label, cursor in cursors.items():
        response = await replay.request(record, replay.alpha, "GET", "/v1/jobs", params={"cursor": cursor})
        if record.check(
            400 <= response.status_code < 500, f"{label}: {response.status_code} {problem_code(response)}"
        ):
            named = problem_field(response)
            if named != "cursor":
                record.note(f"{label}: {response.status_code} names {named!r}")


async def attack_query_key(replay: Replay, record: Record) -> None:
    job_id = await replay.shared_job(record)
    response = await replay.request(
        record, replay.anon, "GET", f"/v1/jobs/{job_id}", params={"api_key": ALPHA_KEY}
    )
    record.check(400 <= response.status_code < 500, f"?api_key= alone: {response.status_code}")
    record.check('"object":"job"' not in response.text.replace(" ", ""), "the answer shows the job")
    response = await replay.request(
        record, replay.alpha, "GET", f"/v1/jobs/{job_id}", params={"api_key": ALPHA_KEY, "token": BRAVO_KEY}
    )
    record.check(400 <= response.status_code < 500, f"?api_key= with a valid header: {response.status_code}")
    await asyncio.sleep(0.5)  # the access line is written after the answer
    log = check_log_secrets(replay, record)
    lines = [line for line in log.splitlines() if "api_key=" in line]
    record.check(bool(lines), "no log line of the ?api_key= request")
    if lines:
        shown = lines[-1][lines[-1].index("GET ") :] if "GET " in lines[-1] else lines[-1]
        record.note(f"logged as: {shown[:90]}")


def check_log_secrets(replay: Replay, record: Record) -> str:
    log = replay.gateway.log_text()
    for label, secret in (
        ("alpha's key", ALPHA_KEY),
        ("bravo's key", BRAVO_KEY),
        ("the webhook secret", WEBHOOK_SECRET),
    ):
        record.check(secret not in log, f"{label} is in the gateway's log")
    return log


async def attack_log_secrets(replay: Replay, record: Record) -> None:
    await asyncio.sleep(0.5)
    log = check_log_secrets(replay, record)
    record.note(f"{len(log.splitlines())} log lines, {log.count(' app.access ')} access lines")


async def attack_head(replay: Replay, record: Record) -> None:
    job_id = await replay.shared_job(record)
    job = await replay.job(record, replay.alpha, job_id)
    for client, path in (
        (replay.anon, "/healthz"),
        (replay.alpha, "/v1/jobs"),
        (replay.alpha, f"/v1/jobs/{job_id}"),
        (replay.alpha, f"/v1/jobs/{job_id}/content"),
    ):
        response = await replay.request(record, client, "HEAD", path)
        length = response.headers.get("content-length")
        record.check(response.status_code == 200, f"HEAD {path}: {response.status_code}")
        record.check(length is not None, f"HEAD {path}: no Content-Length")
        record.check(not response.content, f"HEAD {path}: a body came")
        if path.endswith("/content"):
            size = job["result"]["bytes"]
            record.check(length == str(size), f"HEAD content: Content-Length {length}, the video has {size}")
            record.note(f"content: {length} bytes, ETag {response.headers.get('etag', '-')[:14]}…")


async def attack_openapi(replay: Replay, record: Record) -> None:
    response = await replay.request(record, replay.anon, "GET", "/openapi.json")
    record.check(response.status_code == 200, f"/openapi.json: {response.status_code}")
    schema = response.json()
    refs = list(_refs(schema))
    broken = sorted({ref for ref in refs if not _resolves(schema, ref)})
    record.check(not broken, f"{len(broken)} $ref do not resolve: {', '.join(broken[:3])}")
    assets = 0
    for page in ("/docs", "/redoc"):
        response = await replay.request(record, replay.anon, "GET", page)
        record.check(response.status_code == 200, f"{page}: {response.status_code}")
        for asset in sorted(set(re.findall(r'(?:src|href)="(/[^"]+)"', response.text))):
            assets += 1
            got = await replay.request(record, replay.anon, "GET", asset)
            record.check(got.status_code == 200, f"{page} asset {asset}: {got.status_code}")
    record.note(f"{len(refs)} $refs, all resolve; {assets} bundled assets" if not broken else "")


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolves(schema: Any, ref: str) -> bool:
    if not ref.startswith("#/"):
        return False
    node = schema
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


async def attack_unauth_body(replay: Replay, record: Record) -> None:
    async with raw(replay.gateway.port) as (reader, writer):
        writer.write(
            b"POST /v1/jobs HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Content-Length: 30000000\r\n\r\n"
        )  # ... and not one byte of the body
        await writer.drain()
        start = time.monotonic()
        status, body = await read_status(reader, within=WAIT_S)
        took = time.monotonic() - start
    record.saw(status)
    record.check(status == 401, f"30 MB declared, no key: {status} {body[:60]!r}")
    record.note(f"{status} after {took * 1000:.0f} ms, the body never sent")
    for label, headers in (("no key", {}), ("a wrong key", {"Authorization": "Bearer wg_" + "x" * 40})):
        response = await replay.request(
            record,
            replay.anon,
            "POST",
            "/v1/jobs",
            content=b'{"prompt": "a cat", ',
            headers={"content-type": "application/json", **headers},
        )
        record.check(response.status_code == 401, f"invalid JSON, {label}: {response.status_code}")


async def attack_header_431(replay: Replay, record: Record) -> None:
    status, sent, took = await endless_head(replay.gateway.port, 20 * MB, stop_at_answer=True)
    record.saw(status)
    record.check(status == 431, f"a 20 MB header: {status}")
    record.note(f"{status} after {sent // 1024} KiB sent, {took * 1000:.0f} ms")


async def attack_header_rss(replay: Replay, record: Record) -> None:
    before = replay.gateway.rss_mb()
    peak = before
    floods = [
        asyncio.create_task(endless_head(replay.gateway.port, 40 * MB, stop_at_answer=False))
        for _ in range(5)
    ]
    while not all(flood.done() for flood in floods):
        peak = max(peak, replay.gateway.rss_mb())
        await asyncio.sleep(0.02)
    after = replay.gateway.rss_mb()
    results = [flood.result() for flood in floods]
    for status, _, _ in results:
        record.saw(status)
    sent = sum(s for _, s, _ in results)
    grew = peak - before
    record.check(all(status == 431 for status, _, _ in results), f"answers {[s for s, _, _ in results]}")
    record.check(grew < 50, f"RSS grew {grew:.0f} MB")
    record.note(f"{sent / MB:.0f} MB sent; RSS {before:.0f} → peak {peak:.0f} → {after:.0f} MB (+{grew:.1f})")


async def slowloris_socket(port: int, give_up_s: float) -> tuple[float, Answer]:
    """A head sent a byte a second; seconds until the server closed it, and what it answered."""
    async with raw(port) as (reader, writer):
        start = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
        answer = asyncio.create_task(_read_all(reader))
        with contextlib.suppress(OSError):
            while not answer.done() and time.monotonic() - start < give_up_s:
                writer.write(b"X")
                await writer.drain()
                await asyncio.wait({answer}, timeout=1.0)
        if not answer.done():
            answer.cancel()
            return time.monotonic() - start, SILENT
        data = answer.result()
        held = time.monotonic() - start
    return held, int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else CLOSED


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read()  # up to the server's close (EOF)
    except ConnectionError:
        return b""


async def attack_slowloris(replay: Replay, record: Record) -> None:
    give_up = HEADER_TIMEOUT_S + 10
    results = await asyncio.gather(*(slowloris_socket(replay.gateway.port, give_up) for _ in range(10)))
    for _, status in results:
        record.saw(status)
    held = max(h for h, _ in results)
    record.check(
        held <= HEADER_TIMEOUT_S + 1.0,
        f"a socket was held {held:.1f} s (HEADER_TIMEOUT_S={HEADER_TIMEOUT_S:g})",
    )
    record.note(f"10 sockets held {min(h for h, _ in results):.1f}–{held:.1f} s")


async def attack_body_stall(replay: Replay, record: Record) -> None:
    async with raw(replay.gateway.port) as (reader, writer):
        writer.write(
            b"POST /v1/jobs HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ALPHA_KEY.encode() + b"\r\nContent-Length: 1000\r\n\r\n"
            b'{"prompt":'
        )  # 10 of the 1000 bytes, then nothing
        await writer.drain()
        start = time.monotonic()
        status, body = await read_status(reader, within=WAIT_S)
        took = time.monotonic() - start
    record.saw(status)
    record.check(status == 408, f"{status} {body[:60]!r}")
    record.check(
        took <= BODY_TIMEOUT_S + 1.0, f"answered after {took:.1f} s (BODY_TIMEOUT_S={BODY_TIMEOUT_S:g})"
    )
    record.note(f"{status} after {took:.1f} s")


async def attack_json_types(replay: Replay, record: Record) -> None:
    body = json.dumps({**JOB, "metadata": {"x": 0}}).replace('"x": 0', '"x": 1e400').encode()
    response = await replay.request(
        record, replay.alpha, "POST", "/v1/jobs", content=body, headers={"content-type": "application/json"}
    )
    record.check(response.status_code == 400, f"1e400: {response.status_code}")
    record.check(problem_code(response) == "invalid_json", f"1e400: code {problem_code(response)}")
    for name, value in (("seed", True), ("audio", "on"), ("duration", "5")):
        response = await replay.request(record, replay.alpha, "POST", "/v1/jobs", json={**JOB, name: value})
        if record.check(response.status_code == 422, f"{name}={value!r}: {response.status_code}"):
            record.check(
                problem_field(response) == name, f"{name}={value!r} names {problem_field(response)!r}"
            )


async def attack_tenants(replay: Replay, record: Record) -> None:
    job_id = await replay.shared_job(record)
    deliveries = (await replay.request(record, replay.alpha, "GET", f"/v1/jobs/{job_id}/deliveries")).json()
    delivery = deliveries["data"][0]["id"] if deliveries.get("data") else "msg_none"
    base = f"/v1/jobs/{job_id}"
    for method, path in (
        ("GET", base),
        ("HEAD", base),
        ("GET", f"{base}/content"),
        ("HEAD", f"{base}/content"),
        ("GET", f"{base}/events"),
        ("POST", f"{base}/cancel"),
        ("GET", f"{base}/deliveries"),
        ("POST", f"{base}/deliveries/{delivery}/redeliver"),
    ):
        response = await replay.request(record, replay.bravo, method, path)
        record.check(
            response.status_code == 404, f"bravo {method} {path.replace(base, '…')}: {response.status_code}"
        )
    listed = (await replay.request(record, replay.bravo, "GET", "/v1/jobs")).json()
    record.check(all(j["id"] != job_id for j in listed["data"]), "bravo's list shows alpha's job")
    mine = await replay.request(
        record, replay.alpha, "GET", f"{base}/content", headers={"Range": "bytes=0-9"}
    )
    record.check(mine.status_code == 206, f"alpha's own content: {mine.status_code}")


@dataclass
class Tarpit:
    """Accepts webhook requests and never answers (until the attack ends)."""

    port: int = 0
    open: int = 0
    most_open: int = 0
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.connections += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()


@contextlib.asynccontextmanager
async def tarpit() -> AsyncIterator[Tarpit]:
    pit = Tarpit()
    server = await asyncio.start_server(pit._hold, "127.0.0.1", 0)
    pit.port = server.sockets[0].getsockname()[1]
    try:
        yield pit
    finally:
        server.close()
        if sys.version_info >= (3, 12):
            server.close_clients()


#: Twice WEBHOOK_CONCURRENCY (16): a dispatcher that lets one endpoint take every slot keeps the next
#: endpoint waiting for two rounds of tarpit timeouts.
TARPIT_JOBS = 32


async def attack_webhook_fairness(replay: Replay, record: Record) -> None:
    seeded = {"prompt": "a cat, tarpit", "seed": 4242}
    first = await replay.submit(record, replay.alpha, **seeded)
    if (await replay.finished(record, replay.alpha, [first]))[first]["status"] != "succeeded":
        raise AttackError(f"the seeded job {first} did not succeed")
    async with tarpit() as pit, receiver(WEBHOOK_SECRET) as healthy:
        # The same seeded request again: each reuses the stored video and succeeds at once, so all their
        # webhooks are due together.
        alpha_ids = [
            await replay.submit(record, replay.alpha, webhook_url=pit.url, **seeded)
            for _ in range(TARPIT_JOBS)
        ]
        await until(lambda: pit.open >= 4, within=60, what="alpha's webhooks to fill the tarpit")
        bravo_id = await replay.submit(record, replay.bravo, webhook_url=healthy.url)
        job = (await replay.finished(record, replay.bravo, [bravo_id]))[bravo_id]
        record.check(job["status"] == "succeeded", f"bravo's job {job['status']}")
        await until(lambda: bool(healthy.delivered), within=60, what="bravo's webhook")
        arrived = healthy.delivered[0]
        arrived_wall = time.time() - (time.monotonic() - arrived.at)
        entered = datetime.fromisoformat(json.loads(arrived.body)["timestamp"]).timestamp()
        delay = arrived_wall - entered
        waiting = pit.open
    alpha = await replay.finished(record, replay.alpha, alpha_ids)
    cached = sum(bool(j.get("cached")) for j in alpha.values())
    record.check(all(j["status"] == "succeeded" for j in alpha.values()), "an alpha job did not succeed")
    # Fair: bravo's webhook never waits for a tarpit request to time out (WEBHOOK_TIMEOUT_S).
    record.check(delay < WEBHOOK_TIMEOUT_S, f"bravo's webhook came {delay:.1f} s after its job succeeded")
    record.note(
        f"{cached}/{TARPIT_JOBS} reused videos; bravo's webhook {delay:.2f} s after its job succeeded, "
        f"{waiting} held in the tarpit then, at most {pit.most_open} at once"
    )


def sandbox_task_faults(replay: Replay) -> set[str]:
    """The task faults the gateway's sandbox has (the gateway's tree, see --gateway-tree), lower case."""
    code = (  # app/sandbox since issue 10, app/providers/sandbox before
        "try:\n    from app.sandbox.faults import TASK_ACTIONS as A\n"
        "except ImportError:\n    from app.providers.sandbox.faults import TASK_ACTIONS as A\n"
        "print(' '.join(A))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code],
        env=replay.gateway.env,
        cwd=replay.folder,
        capture_output=True,
        text=True,
    )
    return set(answer.stdout.lower().split())


async def attack_nul_upstream(replay: Replay, record: Record) -> None:
    if "nul" not in replay.task_faults:
        record.unavailable = "the sandbox has no `nul` task fault in this tree"
        return
    ok = await replay.submit(record, replay.alpha, prompt="a cat [sandbox:nul]")
    bad = await replay.submit(
        record, replay.alpha, prompt="a cat [sandbox:FAILED/InternalError] [sandbox:nul]"
    )
    jobs = await replay.finished(record, replay.alpha, [ok, bad], within=60)
    record.check(
        jobs[ok]["status"] == "succeeded", f"the NUL prompt echo: {jobs[ok]['status']} {jobs[ok]['error']}"
    )
    record.check(jobs[bad]["status"] == "failed", f"the NUL failure: {jobs[bad]['status']}")
    record.note(f"echo: {(jobs[ok].get('upstream') or {}).get('orig_prompt')!a}"[:70])
    for job in jobs.values():
        if "\\u0000" in json.dumps(job):
            record.note(f"{job['id']} still shows U+0000")


async def attack_nul_webhook_answer(replay: Replay, record: Record) -> None:
    def answer(_: int) -> Response:
        return Response(b"ok\x00\x00 thanks", status_code=200)

    async with receiver(WEBHOOK_SECRET, answer) as hook:
        job_id = await replay.submit(record, replay.alpha, webhook_url=hook.url)
        await replay.finished(record, replay.alpha, [job_id])
        await until(lambda: bool(hook.requests), within=30, what="the webhook")
        # An attempt that could not be recorded leaves the delivery due: it is sent again once its lease
        # (LEASE_S) lapses. Wait out two leases.
        await asyncio.sleep(2 * LEASE_S + 1)
        sent = len(hook.requests)
    listing = (await replay.request(record, replay.alpha, "GET", f"/v1/jobs/{job_id}/deliveries")).json()
    record.check(sent == 1, f"the receiver got the webhook {sent} times")
    if record.check(len(listing["data"]) == 1, f"{len(listing['data'])} deliveries listed"):
        delivery = listing["data"][0]
        record.check(
            delivery["status"] == "succeeded" and delivery["attempt_count"] == 1,
            f"the receiver answered 200; the delivery is {delivery['status']}, "
            f"{delivery['attempt_count']} attempts recorded",
        )
        body = (delivery["attempts"] or [{}])[0].get("response_body")
        record.note(f"stored answer {body!a}")


async def attack_stored_video(replay: Replay, record: Record) -> None:
    if not {"corrupt", "duration"} <= replay.task_faults:
        record.unavailable = "the sandbox has no `corrupt` and `duration` task faults in this tree"
        return
    corrupt = await replay.submit(record, replay.alpha, prompt="a cat [sandbox:corrupt]")
    short = await replay.submit(record, replay.alpha, prompt="a cat [sandbox:duration/5]", duration=9)
    jobs = await replay.finished(record, replay.alpha, [corrupt, short])
    bad, brief = jobs[corrupt], jobs[short]
    code = (bad.get("error") or {}).get("code")
    message = (bad.get("error") or {}).get("message") or ""
    record.check(
        (bad["status"], code) == ("failed", "video_unplayable"), f"corrupt MP4: {bad['status']} {code}"
    )
    record.check(
        not SERVER_PATH.search(message) and str(replay.folder) not in message, f"a path in {message!r}"
    )
    record.check(brief["status"] == "succeeded", f"5 s for 9 s: {brief['status']} {brief.get('error')}")
    warned = [w for w in brief.get("warnings", []) if "5 s" in w]
    record.check(bool(warned), f"5 s for 9 s: no warning ({brief.get('warnings')})")
    record.note(
        f"{code}: {message[:50]!r}; warning {warned[0][:40]!r}" if warned else f"{code}: {message[:60]!r}"
    )


async def attack_db_outage(replay: Replay, record: Record) -> None:
    if replay.sqlite_path is not None:
        record.unavailable = "needs a database server (--database-url postgresql+asyncpg://…)"
        return
    proxy = replay.database_proxy
    if proxy is None:
        record.unavailable = "tests/tcpproxy.py (to cut the database off) is not in this tree"
        return
    record.expected_5xx = frozenset({503})
    before = await replay.submit(record, replay.alpha)
    await proxy.cut()
    slowest = 0.0
    try:
        for _ in range(2):  # the pooled connections die first, then new ones are refused
            for method, path, body in (("GET", f"/v1/jobs/{before}", None), ("POST", "/v1/jobs", JOB)):
                start = time.monotonic()
                response = await replay.request(record, replay.alpha, method, path, json=body)
                slowest = max(slowest, time.monotonic() - start)
                record.check(
                    response.status_code == 503 and problem_code(response) == "database_unavailable",
                    f"{method} during the outage: {response.status_code} {problem_code(response)}",
                )
                record.check("retry-after" in response.headers, f"{method} during the outage: no Retry-After")
        ready = await replay.request(record, replay.anon, "GET", "/readyz")
        record.check(ready.status_code == 503, f"/readyz during the outage: {ready.status_code}")
    finally:
        await proxy.restore()
    # It recovers without a restart.
    deadline = time.monotonic() + 30
    while (await replay.request(record, replay.alpha, "GET", f"/v1/jobs/{before}")).status_code != 200:
        if time.monotonic() > deadline:
            raise AttackError("the gateway did not recover within 30 s of the database's return")
        await asyncio.sleep(0.2)
    after = await replay.submit(record, replay.alpha)
    jobs = await replay.finished(record, replay.alpha, [before, after])
    record.check(all(j["status"] == "succeeded" for j in jobs.values()), "a job around the outage failed")
    record.note(f"503s answered within {slowest:.2f} s; recovered without a restart, both jobs succeeded")


async def attack_kill_9(replay: Replay, record: Record) -> None:
    ids = [await replay.submit(record, replay.alpha, prompt=f"a cat [sandbox:slow/4] {i}") for i in range(8)]
    deadline = time.monotonic() + 60
    while True:
        statuses = [(await replay.job(record, replay.alpha, i))["status"] for i in ids]
        moving = [s for s in statuses if s in ("submitted", "running", "storing")]
        if (len(moving) >= 3 and "running" in moving) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    record.note("at the kill: " + ", ".join(f"{s} {n}" for s, n in sorted(Counter(statuses).items())))
    record.check(bool(moving), "no job was in flight at the kill")
    down_from = time.monotonic()
    down = await replay.restart(kill=True)
    record.excluded.append((down_from, time.monotonic()))  # down on purpose: not a stall
    jobs = await replay.finished(record, replay.alpha, ids, within=90)
    succeeded = sum(j["status"] == "succeeded" for j in jobs.values())
    for job in jobs.values():
        record.check(job["status"] == "succeeded", f"{job['id']} {job['status']}: {job.get('error')}")
    # Every job this run accepted is still there.
    lost = []
    for job_id, client in replay.accepted.items():
        response = await replay.request(record, client, "GET", f"/v1/jobs/{job_id}")
        if response.status_code != 200:
            lost.append(job_id)
    record.check(not lost, f"{len(lost)} accepted job(s) gone: {', '.join(lost[:3])}")
    record.note(
        f"{len(jobs)}/{len(ids)} terminal ({succeeded} succeeded); down {down:.1f} s; "
        f"{len(replay.accepted) - len(lost)}/{len(replay.accepted)} accepted jobs still there"
    )


async def attack_sqlite_deleted(replay: Replay, record: Record) -> None:
    path = replay.sqlite_path
    if path is None:
        record.unavailable = "the database is not a SQLite file"
        return
    record.expected_5xx = frozenset({503})
    await replay.submit(record, replay.alpha)
    path.unlink()
    response = await replay.request(record, replay.alpha, "POST", "/v1/jobs", json=JOB)
    ready = await replay.request(record, replay.anon, "GET", "/readyz")
    record.check(ready.status_code == 503, f"/readyz {ready.status_code} with the file gone")
    if response.status_code == 202:
        orphan = response.json()["id"]
        down_from = time.monotonic()
        await replay.restart(kill=False)
        record.excluded.append((down_from, time.monotonic()))
        after = await replay.request(record, replay.alpha, "GET", f"/v1/jobs/{orphan}")
        record.check(
            after.status_code == 200,
            f"202 for {orphan} with the file deleted; after a restart it is {after.status_code} (lost)",
        )
    else:
        record.check(
            response.status_code == 503 and problem_code(response) == "database_unavailable",
            f"a job with the file deleted: {response.status_code} {response.text[:80]}",
        )
        retry_after = response.headers.get("retry-after")
        record.note(f"refused: {response.status_code} {problem_code(response)}, Retry-After {retry_after}")


ATTACKS: list[tuple[str, str, Attack]] = [
    (
        "image-marker-flood",
        "10 MB JPEG, 2.5 M FF E1 00 02 after SOI",
        image_attack(hostile.marker_flood_jpeg, "image/jpeg"),
    ),
    ("image-eps-as-png", "9.5 MB EPS sent as data:image/png", image_attack(hostile.eps, "image/png")),
    ("image-bomb-data", "PNG IHDR 30000x30000 as a data: URI", image_attack(hostile.bomb_png, "image/png")),
    ("image-bomb-url", "the same bomb fetched from a URL", attack_bomb_url),
    ("image-truncated", "a JPEG cut in half", image_attack(hostile.truncated_jpeg, "image/jpeg")),
    (
        "image-scan-flood",
        "10 MB progressive JPEG, one scan repeated",
        image_attack(hostile.scan_flood_jpeg, "image/jpeg"),
    ),
    (
        "image-chunk-flood",
        "10 MB PNG of empty IDAT chunks, no IEND",
        image_attack(hostile.chunk_flood_png, "image/png"),
    ),
    ("cursor", "forged and malformed list cursors", attack_cursor),
    ("query-key", "?api_key=<key>; the key in the log", attack_query_key),
    ("head", "HEAD /healthz, /v1/jobs, a job, its content", attack_head),
    ("openapi", "every $ref resolves; /docs, /redoc", attack_openapi),
    ("unauth-body", "30 MB declared, no key; bad JSON, no key", attack_unauth_body),
    ("header-431", "a 20 MB header", attack_header_431),
    ("header-rss", "5 unfinished 40 MB headers at once", attack_header_rss),
    ("slowloris", "10 heads at a byte a second", attack_slowloris),
    ("body-stall", "Content-Length 1000, 10 bytes sent", attack_body_stall),
    ("json-types", "1e400; seed true, audio 'on', duration '5'", attack_json_types),
    ("tenants", "bravo on alpha's job: every route", attack_tenants),
    ("webhook-fairness", "32 webhooks due at once to a tarpit, then bravo's", attack_webhook_fairness),
    ("nul-upstream", "U+0000 in DashScope's task answers", attack_nul_upstream),
    ("nul-webhook-answer", "a receiver answering NUL bytes", attack_nul_webhook_answer),
    ("stored-video", "a corrupt MP4; 5 s served for 9 s", attack_stored_video),
    ("db-outage", "the database server cut off, then back", attack_db_outage),
    ("kill-9", "kill -9 with jobs in flight, restart", attack_kill_9),
    ("sqlite-deleted", "the SQLite file deleted under the gateway", attack_sqlite_deleted),
    ("log-secrets", "no key or secret in the whole log", attack_log_secrets),
]


def selected(only: list[str]) -> list[tuple[str, str, Attack]]:
    if not only:
        return ATTACKS
    chosen = [a for a in ATTACKS if any(a[0] == o or a[0].startswith(o.rstrip("-") + "-") for o in only)]
    if not chosen:
        raise SystemExit(f"no attack named {', '.join(only)}; see --list")
    return chosen


# --- running and reporting ----------------------------------------------------------------------------------


async def run(only: list[str], database_url: str | None, tree: Path | None, keep: bool) -> int:
    folder = Path(tempfile.mkdtemp(prefix="attack-replay-"))
    url = database_url or f"sqlite+aiosqlite:///{folder / 'gateway.db'}"
    attacks = selected(only)
    replay = Replay(folder, url, tree)
    records: list[Record] = []
    source = f"app/ from {tree}" if tree else "app/ of this tree"
    print(f"gateway: {replay.gateway.url}, {source}, {url.split('@')[-1]}, logs in {folder}", flush=True)
    try:
        replay.task_faults = sandbox_task_faults(replay)
        await replay.start_database_proxy()
        replay.gateway.start()
        await replay.gateway.wait_up()
        replay.prober = Prober(replay.gateway.port, folder)
        await replay.prober.settle(time.monotonic())
        await asyncio.sleep(1.0)
        idle = Record("(idle, 1 s)")
        idle.worst_ms, _ = replay.prober.window(time.monotonic() - 1.0, time.monotonic(), [])
        records.append(idle)
        for name, _, attack in attacks:
            record = Record(name)
            start = time.monotonic()
            try:
                await attack(replay, record)
            except AttackError as error:
                record.failures.append(str(error))
            except Exception as error:  # the gateway answered something this script did not expect
                record.failures.append(f"{type(error).__name__}: {error}" if str(error) else repr(error))
            end = time.monotonic()
            await replay.prober.settle(end)
            record.worst_ms, unanswered = replay.prober.window(start, end, record.excluded)
            if unanswered:
                record.failures.append(f"{unanswered} /healthz probes unanswered")
            records.append(record)
            print(f"  {name}: {record.verdict}", flush=True)
    finally:
        if replay.prober is not None:
            replay.prober.stop()
        replay.gateway.stop()
        if replay.database_proxy is not None:
            await replay.database_proxy.cut()
            await asyncio.sleep(0.1)  # its connection tasks end
        await replay.close()
    print_table(records, attacks)
    attacked = records[1:]
    stalls = [r.worst_ms for r in attacked if r.worst_ms is not None]
    summary = {
        "attacks": len(attacked),
        "failed": sum(r.failed for r in attacked),
        "five_xx": sum(r.five_xx for r in attacked),
        "worst_stall_ms": round(max(stalls), 1) if stalls else None,
        "not_available": sum(r.unavailable is not None and not r.failed for r in attacked),
    }
    print(json.dumps(summary))
    if not keep and not summary["failed"]:
        shutil.rmtree(folder, ignore_errors=True)
    elif summary["failed"]:
        print(f"gateway log kept: {replay.gateway.log}", file=sys.stderr)
    return 1 if summary["failed"] else 0


def print_table(records: list[Record], attacks: list[tuple[str, str, Attack]]) -> None:
    print()
    print(f"{'attack':20} {'answers':26} {'5xx':>3} {'healthz':>8}  verdict")
    for record in records:
        worst = f"{record.worst_ms:6.0f}ms" if record.worst_ms is not None else "-"
        print(f"{record.name:20} {record.answers_text():26} {record.five_xx:>3} {worst:>8}  {record.verdict}")
    print()
    described = {name: what for name, what, _ in attacks}
    for record in records[1:]:
        details = "; ".join(n for n in record.notes if n)
        print(f"{record.name:20} {described[record.name]}" + (f" — {details}" if details else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run this attack (or group)"
    )
    parser.add_argument("--list", action="store_true", help="list the attacks and exit")
    parser.add_argument("--database-url", help="a Postgres URL (default: SQLite in the temporary directory)")
    parser.add_argument(
        "--gateway-tree",
        type=Path,
        help="serve app/ of another checkout (e.g. `git worktree add /tmp/old REV`) to see the attacks bite",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    parser.add_argument("--probe", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        with contextlib.suppress(KeyboardInterrupt):
            probe_forever(int(args.probe[0]), Path(args.probe[1]))
        return
    if args.list:
        for name, what, _ in ATTACKS:
            print(f"{name:20} {what}")
        return
    tree = args.gateway_tree.resolve() if args.gateway_tree else None
    sys.exit(asyncio.run(run(args.only, args.database_url, tree, args.keep)))


if __name__ == "__main__":
    main()
