"""Fixtures shared by the whole suite.

- Every test gets its own migrated database: a copy of a once-migrated SQLite template, or, when
  TEST_DATABASE_URL points at Postgres (`make test-postgres`), the throwaway server truncated.
- `settings` is isolated from the developer's environment and uses tiny sandbox timings.
- `gateway` serves the real app (with its embedded sandbox) with uvicorn on 127.0.0.1, built as
  `wan-gateway serve` builds it (`app.serving.gateway_config`), reached with httpx over loopback; the job
  loop is off by default so tests drive it with `run_once()`.
- `s3_bucket` is a fresh bucket on a moto S3 server (one per session, on 127.0.0.1), with the dummy AWS
  credentials botocore reads from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings, environment
from app.db.base import Base
from app.db.migrate import upgrade_head
from app.lifespan import Gateway
from app.main import create_app
from app.sandbox.server import SandboxServer
from app.serving import EmbeddedServer, gateway_config
from app.tls import client_context
from tests.helpers import data_uri, wait_for
from tests.s3 import AWS_ENV, AWS_ENV_CLEARED, Bucket, MotoServer, s3_client

REPO = Path(__file__).resolve().parents[1]
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
#: Encoded sandbox clips are kept between runs: encoding is the slowest thing the sandbox does.
CLIP_CACHE = REPO / ".cache" / "sandbox-clips"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the developer's shell or an .env file."""
    for name in environment():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "gateway.db"
    upgrade_head(f"sqlite+aiosqlite:///{path}")
    return path


def worker_database_url(url: str, worker: str | None) -> str:
    """The database this pytest process uses on the server of `url`: `url` itself, or under pytest-xdist
    one of its own per worker (`wan_test_gw0`, …), so workers never truncate each other's tables."""
    if not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


async def _create_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    assert name is not None and name.replace("_", "").isalnum()  # a name we made: safe to quote as is
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str | None:
    """This process's migrated Postgres database in the Postgres pass, None in the SQLite pass."""
    if not TEST_DATABASE_URL:
        return None
    url = worker_database_url(TEST_DATABASE_URL, os.environ.get("PYTEST_XDIST_WORKER"))
    if url != TEST_DATABASE_URL:
        asyncio.run(_create_database(TEST_DATABASE_URL, url))
    upgrade_head(url)
    return url


@pytest.fixture
async def database_url(tmp_path: Path, sqlite_template: Path, postgres_url: str | None) -> str:
    if postgres_url:
        engine = create_async_engine(postgres_url)
        async with engine.begin() as conn:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
        await engine.dispose()
        return postgres_url
    path = tmp_path / "gateway.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "dashscope_sandbox": True,
        "dashscope_credentials_file": tmp_path / "no-credentials",
        "output_dir": tmp_path / "output",
        "sandbox_state_path": tmp_path / "sandbox.db",
        "sandbox_clip_cache_dir": CLIP_CACHE,
        # Captions and pictures off: the suite's many prompts ("job 0", "job 1", …) and test images would
        # each cost an encode (a cold CI cache paid ~60 of them); one clip then serves every job of a size,
        # duration and sound. tests/sandbox/test_clip_picture.py and the browser test turn them on.
        "sandbox_clip_captions": False,
        "sandbox_clip_pictures": False,
        "sandbox_pending_s": 0.05,
        "sandbox_running_s": 0.1,
        "poll_min_interval_s": 0.05,
        "poll_max_interval_s": 0.2,
        "reconcile_grace_s": 0.5,
        "workers_enabled": False,
        "public_base_url": "http://127.0.0.1:8000",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class Served:
    """The gateway running on loopback: its URL, a client, and its in-process resources."""

    url: str
    client: httpx.AsyncClient
    gateway: Gateway
    #: Sent by `submit`, `job` and `drive`: an `Authorization` header when the gateway has client keys.
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def sandbox(self) -> SandboxServer:
        assert self.gateway.sandbox is not None, "the gateway runs against its sandbox in tests"
        return self.gateway.sandbox

    async def submit(self, reference_image: str, **fields: Any) -> str:
        """POST a 2-second 720P job (fields override) and return its id."""
        body = {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": reference_image}
        response = await self.client.post("/v1/jobs", json={**body, **fields}, headers=self.headers)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/jobs/{job_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def drive(self, job_id: str, *statuses: str, within: float = 60.0) -> dict[str, Any]:
        """Run the job loop until the job reaches one of `statuses` (the sandbox runs on a clock)."""

        async def reached() -> dict[str, Any] | None:
            await self.gateway.poller.run_once()
            body = await self.job(job_id)
            return body if body["status"] in statuses else None

        return await wait_for(reached, within=within, what=f"{job_id} to become {statuses}")

    async def pump_until(
        self, condition: Callable[[], bool | Awaitable[bool]], *, within: float = 60.0, what: str = ""
    ) -> None:
        """Run the job loop and the webhook dispatcher until `condition()` holds (sync or async)."""

        async def done() -> bool:
            await self.gateway.poller.run_once()
            await self.gateway.dispatcher.run_once()
            outcome = condition()
            return bool(await outcome) if inspect.isawaitable(outcome) else bool(outcome)

        await wait_for(done, within=within, what=what or "the condition")


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Served]:
    # IPPROTO_TCP explicitly: only then does asyncio turn Nagle off on accepted connections (else each
    # keep-alive request can stall ~40 ms on delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings.public_base_url = f"http://127.0.0.1:{port}"
    app = create_app(settings)
    # As `wan-gateway serve` builds its Config; the server is the embedded kind (ready as soon as it
    # listens, stopped at once), so a test does not pay uvicorn's 0.1 s polling steps on start and stop.
    server = EmbeddedServer(gateway_config(app, settings))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            if task.done():
                task.result()  # raise the startup error
            raise AssertionError("the gateway did not start" + (" within 30 s" if not task.done() else ""))
        async with httpx.AsyncClient(
            base_url=settings.public_base_url, timeout=30, verify=client_context()
        ) as client:
            yield Served(url=settings.public_base_url, client=client, gateway=app.state.gateway)
    finally:
        server.request_exit()
        await task
        sock.close()


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Served]:
    async with serve(settings) as served:
        yield served


@pytest.fixture
def png_uri() -> str:
    """A 640x360 PNG: a 16:9 reference image (720P output is 1280x720)."""
    return data_uri(640, 360)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer.start(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials in the standard variables, and nothing from the developer's ~/.aws."""
    for name in AWS_ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
async def s3_bucket(moto_server: MotoServer, aws_env: None) -> AsyncIterator[Bucket]:
    """A new, empty bucket for this test."""
    async with s3_client(moto_server.endpoint_url) as client:
        name = f"test-{uuid.uuid4().hex[:20]}"
        await client.create_bucket(Bucket=name)
        yield Bucket(name, moto_server.endpoint_url, client)


#: Why a test may stay out of the Postgres pass: nothing it checks reaches SQL whose behaviour differs
#: between SQLite and Postgres (see docs/TESTING.md).
ONE_DATABASE_REASONS = {
    "refused before the database": "the request is answered (4xx) before any row is read or written",
    "http edge": "the HTTP server's own bounds (request head, body, methods): no SQL on the path",
    "no sql": "startup, documents or configuration only: the database is opened, never queried by the test",
    "api client": "a client of the API (the CLI): what it shows are the API's answers, which the API's own "
    "tests check on both databases",
    "kill -9 on postgres in scaleout": "a single process killed and restarted: tests/scaleout kills workers "
    "mid-job (after the create, before its task id is saved; every job once) on Postgres",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Which tests run, and in what order.

    The Postgres pass reruns the tests that reach the database: those that ask for `database_url`
    (directly or through `settings`/`gateway`), unless marked `one_database(reason)` with one of
    `ONE_DATABASE_REASONS`. The default is in: a new test on the database runs on Postgres too unless its
    author says, in those words, why it cannot differ there. `POSTGRES_PASS_ALL=1` runs everything.

    Then the `slow` tests go first (a stable sort: every xdist worker collects the same order), so with
    tests spread over workers none of them is left running a long test alone at the end."""
    for item in items:
        if (marker := item.get_closest_marker("one_database")) is not None:
            reason = marker.kwargs.get("reason", marker.args[0] if marker.args else None)
            if reason not in ONE_DATABASE_REASONS:
                raise pytest.UsageError(
                    f"{item.nodeid}: one_database needs reason= one of {sorted(ONE_DATABASE_REASONS)}"
                )
    if TEST_DATABASE_URL and not os.environ.get("POSTGRES_PASS_ALL"):
        keep = [
            item
            for item in items
            if "database_url" in getattr(item, "fixturenames", ())
            and item.get_closest_marker("one_database") is None
        ]
        if len(keep) < len(items):
            config.hook.pytest_deselected(items=[item for item in items if item not in keep])
            items[:] = keep
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Captured output is shown with lone surrogates escaped (`\\ud800`): tests feed the gateway text
    that holds them, its log lines quote it, and pytest-xdist sends every report to the controller as
    UTF-8, which cannot carry a lone surrogate (the worker would crash)."""
    report: pytest.TestReport = yield
    report.sections = [(title, _utf8_safe(content)) for title, content in report.sections]
    if isinstance(report.longrepr, str):
        report.longrepr = _utf8_safe(report.longrepr)
    return report


def _utf8_safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
