"""API-path benchmark: how many polling clients the gateway's HTTP API keeps up with, beside a minimal app.

Two servers run in the same run, under the same conditions: the gateway as `make run` serves it
(`wan-gateway serve`, `WORKERS_ENABLED=false`, the built-in sandbox upstream, no client keys, LOG_LEVEL
INFO with uvicorn's access log on, as the defaults have it), and a minimal FastAPI + SQLAlchemy async app
doing the same database work per request (one insert / one get by primary key / one list of 20, newest
first, on an index), served by the same uvicorn construction (`app.serving.gateway_config`: one process,
the same protocol class, access log on, same log level and format). Each gets its own database: SQLite
files in a temp dir, or (`--db postgres`) two databases of one throwaway Postgres server
(`scripts/with-postgres.sh`; fsync off) or of the server `--database-url` names.

wrk (`-t1 -c32`, Debian's) loads each route for `--seconds`, gateway then minimal app, `--rounds` times:

- `POST /v1/jobs` with a 2 KB PNG `data:` URI, no `Idempotency-Key` and no seed (every request makes a
  new job: what a plain client does; a key adds one insert to the gateway's transaction);
- `GET /v1/jobs/{id}`, ids picked at random among 1,000 of the jobs;
- `GET /v1/jobs?limit=20` once the table holds `--jobs` (9,000) rows (copies of a POSTed row).

Figures per side are the median over the rounds; ratio = gateway req/s / minimal req/s. The last line is
JSON: `{"get_ratio": …, "post_ratio": …, "list_ratio": …, "get_p99_ms": …, "db": "sqlite"}`.
`--auth` runs the gateway with a client key (and quotas high enough never to refuse), so the tenant
lookup and quota admission are measured too. `--profile DIR` records a py-spy flame graph of the gateway
per route. Prints figures; asserts nothing. Everything listens on 127.0.0.1.

    .venv/bin/python bench/api.py                  # SQLite, ≈ 2.5 min
    .venv/bin/python bench/api.py --db postgres    # a throwaway Postgres (needs the server binaries)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, Index, String, Table, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

REPO = Path(__file__).resolve().parents[1]
ROUTES = ("post", "get", "list")
LABELS = {"post": "POST /v1/jobs", "get": "GET /v1/jobs/{id}", "list": "GET /v1/jobs?limit=20"}
BENCH_KEY = "wg_bench_" + "k" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def png_data_uri() -> str:
    """A 640×360 PNG of about 2 KB (a few stripes: real pixels, small file)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 360), (40, 120, 200))
    draw = ImageDraw.Draw(image)
    rng = random.Random(7)
    for _ in range(24):
        x = rng.randrange(0, 600)
        draw.rectangle((x, 0, x + rng.randrange(4, 40), 360), fill=(rng.randrange(256), 80, 160))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# --- the minimal app -------------------------------------------------------------------------------------


class _MinimalBase(DeclarativeBase):
    pass


class MinimalRow(_MinimalBase):
    """The minimal app's job: an id, an owner, a status, the request as sent, a creation time."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_owner_created_at_id", "owner", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)  # the request as shown: the image described
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the request as received: the data: URI
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MinimalIn(BaseModel):
    prompt: str
    duration: float | None = None
    size: str | None = None
    reference_image: str


class MinimalOut(BaseModel):
    id: str
    status: str
    created_at: datetime
    request: dict[str, Any]


class MinimalList(BaseModel):
    data: list[MinimalOut]


def minimal_app(database_url: str) -> Any:
    """FastAPI + SQLAlchemy async, the same database work as the gateway's three routes, nothing else."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    sqlite = database_url.startswith("sqlite")
    pool = {} if sqlite else {"pool_size": 10, "max_overflow": 10}  # the gateway's DATABASE_POOL_SIZE
    engine = create_async_engine(database_url, **pool)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            if sqlite:
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            await conn.run_sync(_MinimalBase.metadata.create_all)
        yield
        await engine.dispose()

    api = FastAPI(lifespan=lifespan)

    def out(row: MinimalRow) -> MinimalOut:
        return MinimalOut(id=row.id, status=row.status, created_at=row.created_at, request=row.request)

    @api.post("/v1/jobs", status_code=202)
    async def create(body: MinimalIn) -> MinimalOut:
        row = MinimalRow(
            id="job_" + secrets.token_hex(12),
            owner=None,
            status="queued",
            request={
                **body.model_dump(exclude={"reference_image"}),
                "image_bytes": len(body.reference_image),
            },
            payload=body.model_dump(),
            created_at=datetime.now(UTC),
        )
        async with sessions.begin() as session:
            session.add(row)
        return out(row)

    @api.get("/v1/jobs/{job_id}")
    async def get(job_id: str) -> MinimalOut:
        async with sessions() as session:
            row = await session.get(MinimalRow, job_id)
        if row is None:
            raise HTTPException(404)
        return out(row)

    @api.get("/v1/jobs")
    async def listing(limit: int = 20) -> MinimalList:
        async with sessions() as session:
            rows = await session.scalars(
                select(MinimalRow)
                .where(MinimalRow.owner.is_(None))
                .order_by(MinimalRow.created_at.desc(), MinimalRow.id.desc())
                .limit(limit)
            )
            return MinimalList(data=[out(r) for r in rows])

    return api


def serve_minimal(database_url: str, port: int, log_level: str) -> None:
    """The minimal app under the gateway's own uvicorn construction and logging format."""
    from app import serving

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    serving.run(serving.gateway_config(minimal_app(database_url), serving.HttpLimits(), port=port))


# --- processes -------------------------------------------------------------------------------------------


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log = (workdir / f"{name}.log").open("ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def wait_ready(url: str, child: Child, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise SystemExit(f"{child.name} exited ({child.proc.returncode}); see its log")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {child.name}")


@dataclass
class Side:
    name: str
    url: str
    database_url: str
    table: Table  # its jobs table, to seed
    child: Child
    headers: dict[str, str]


def gateway_jobs_table() -> Table:
    from app.jobs.models import Job

    table: Table = Job.__table__  # type: ignore[assignment]
    return table


def start_gateway(workdir: Path, database_url: str, args: argparse.Namespace) -> Side:
    port = free_port()
    keep = (
        "DASHSCOPE_",
        "DATABASE_",
        "SANDBOX_",
        "STORAGE_",
        "S3_",
        "WEBHOOK_",
        "WORKERS_",
        "GATEWAY_",
        "QUOTA_",
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(keep)},
        "DATABASE_URL": database_url,
        "WORKERS_ENABLED": "false",
        "OUTPUT_DIR": str(workdir / "output"),
        "DASHSCOPE_CREDENTIALS_FILE": str(workdir / "none"),
        "SANDBOX_CLIP_CACHE_DIR": str(REPO / ".cache" / "sandbox-clips"),
        "LOG_LEVEL": args.log_level,
    }
    headers = {}
    if args.auth:
        env["GATEWAY_API_KEYS"] = f"bench:{BENCH_KEY}"
        # Admission runs its checks on every submission; limits this high never refuse one.
        env["QUOTA_MAX_ACTIVE_JOBS"] = "10000000"
        env["QUOTA_SUBMITS_PER_MINUTE"] = "10000000"
        env["QUOTA_VIDEO_SECONDS_PER_DAY"] = "2000000000"
        headers["Authorization"] = f"Bearer {BENCH_KEY}"
    argv = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    child = Child("gateway", argv, env, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/healthz", child)
    return Side("gateway", url, database_url, gateway_jobs_table(), child, headers)


def minimal_jobs_table() -> Table:
    table: Table = MinimalRow.__table__  # type: ignore[assignment]
    return table


def start_minimal(workdir: Path, database_url: str, args: argparse.Namespace) -> Side:
    port = free_port()
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve-minimal",
        database_url,
        "--port",
        str(port),
    ]
    argv += ["--log-level", args.log_level]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = Child("minimal", argv, env, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/v1/jobs?limit=1", child)
    return Side("minimal", url, database_url, minimal_jobs_table(), child, {})


# --- seeding ---------------------------------------------------------------------------------------------


async def _seed(database_url: str, jobs: Table, total: int) -> list[str]:
    """Copy the oldest row until the table holds `total` rows (new ids, one second apart, older than every
    real row); return up to 1,000 ids to GET."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            count = int((await conn.scalar(select(func.count()).select_from(jobs))) or 0)
            template = (
                (await conn.execute(select(jobs).order_by(jobs.c.created_at).limit(1))).mappings().first()
            )
            assert template is not None, "no row to copy"
            oldest: datetime = template["created_at"]
            rows = []
            for n in range(max(0, total - count)):
                row = dict(template)
                row["id"] = "job_" + secrets.token_hex(12)
                when = oldest - timedelta(seconds=n + 1)
                row["created_at"] = when
                if "updated_at" in row:
                    row["updated_at"] = when
                rows.append(row)
            for start in range(0, len(rows), 500):
                await conn.execute(jobs.insert(), rows[start : start + 500])
            ids = list((await conn.scalars(select(jobs.c.id).limit(1000))).all())
        if engine.dialect.name == "postgresql":  # fresh statistics for the planner, as autovacuum would
            async with engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE jobs")
    finally:
        await engine.dispose()
    return ids


# --- load ------------------------------------------------------------------------------------------------

_LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n@@{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def lua_script(route: str, side: Side, body: str, ids: list[str]) -> str:
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in side.headers.items())
    if route == "post":
        return (
            headers
            + 'wrk.method = "POST"\nwrk.path = "/v1/jobs"\nwrk.headers["Content-Type"] = "application/json"\n'
            + f"wrk.body = {json.dumps(body)}\n"
            + _LUA_DONE
        )
    if route == "get":
        table = ",".join(json.dumps(i) for i in ids)
        return (
            headers
            + f"local ids = {{{table}}}\n"
            + "math.randomseed(42)\n"
            + 'request = function() return wrk.format("GET", "/v1/jobs/" .. ids[math.random(#ids)]) end\n'
            + _LUA_DONE
        )
    return headers + 'wrk.path = "/v1/jobs?limit=20"\n' + _LUA_DONE


@dataclass
class Figures:
    rps: float
    cpu_ms: float  # the server's CPU time (all its threads) per request
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, script: str, workdir: Path, seconds: float, connections: int, pid: int) -> Figures:
    path = workdir / "load.lua"
    path.write_text(script)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(path), url]
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    line = next(part for part in out.splitlines() if part.startswith("@@"))
    data = json.loads(line[2:])
    return Figures(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        cpu_ms=1000 * cpu / max(data["requests"], 1),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        non2xx=data["non2xx"],
        errors=data["errors"],
    )


class Profiler:
    """`py-spy record` of a server while one route is loaded (`--profile DIR`): `DIR/<side>-<route>.txt`,
    collapsed stacks (`py-spy record -f raw`), for a flame graph or a top-frames count."""

    def __init__(self, directory: Path | None, pid: int, extra: list[str], prefix: str) -> None:
        self.directory, self.pid, self.extra, self.prefix = directory, pid, extra, prefix
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, name: str, seconds: float) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out = self.directory / f"{self.prefix}-{name}.txt"
        argv = [
            spy,
            "record",
            "-p",
            str(self.pid),
            "-d",
            str(int(seconds)),
            "-f",
            "raw",
            "-o",
            str(out),
        ]
        argv += ["--nonblocking", *self.extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.wait(timeout=60)
            self.proc = None


# --- main ------------------------------------------------------------------------------------------------


def postgres_urls(base: str) -> tuple[str, str]:
    """Two databases on the server of `base`: one per side (created, or emptied when they exist)."""
    import asyncpg  # type: ignore[import-untyped]

    plain = base.replace("postgresql+asyncpg://", "postgresql://")

    async def make() -> None:
        conn = await asyncpg.connect(plain)
        try:
            for name in ("bench_gateway", "bench_minimal"):
                await conn.execute(f"DROP DATABASE IF EXISTS {name}")
                await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(make())
    head = base.rsplit("/", 1)[0]
    return f"{head}/bench_gateway", f"{head}/bench_minimal"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", help="Postgres server to use (else a throwaway one is started)")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per route and side (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="each measurement this many times (default 2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=9000, help="rows in the table before the list route")
    parser.add_argument("--auth", action="store_true", help="the gateway with a client key and quotas")
    parser.add_argument("--log-level", default="INFO", help="both servers' LOG_LEVEL (default INFO)")
    parser.add_argument("--only", choices=ROUTES, action="append", help="just these routes")
    parser.add_argument("--profile", type=Path, help="py-spy flame-graph input per route (gateway) here")
    parser.add_argument(
        "--profile-args", default="--gil --rate 100", help="py-spy options (default: %(default)s)"
    )
    parser.add_argument("--profile-minimal", action="store_true", help="profile the minimal app too")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    parser.add_argument("--serve-minimal", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_minimal:
        serve_minimal(args.serve_minimal, args.port, args.log_level)
        return
    if args.db == "postgres" and not args.database_url:
        if not os.environ.get("TEST_DATABASE_URL"):
            script = REPO / "scripts" / "with-postgres.sh"
            os.execv(str(script), [str(script), sys.executable, *sys.argv])  # noqa: S606
        args.database_url = os.environ["TEST_DATABASE_URL"]

    workdir = Path(tempfile.mkdtemp(prefix="wan-apibench."))
    if args.db == "postgres":
        gateway_db, minimal_db = postgres_urls(args.database_url)
    else:
        gateway_db = f"sqlite+aiosqlite:///{workdir / 'gateway.db'}"
        minimal_db = f"sqlite+aiosqlite:///{workdir / 'minimal.db'}"
    routes = [r for r in ROUTES if not args.only or r in args.only]
    body = json.dumps(
        {
            "prompt": "a cat running on grass",
            "duration": 5,
            "size": "1280*720",
            "reference_image": png_data_uri(),
        }
    )
    sides: list[Side] = []
    results: dict[tuple[str, str], list[Figures]] = {}
    load_before = os.getloadavg()
    try:
        sides.append(start_gateway(workdir, gateway_db, args))
        sides.append(start_minimal(workdir, minimal_db, args))
        gateway = sides[0]
        for side in sides:  # one row each to copy, and a check that the request is accepted
            headers = {**side.headers, "content-type": "application/json"}
            probe = httpx.post(f"{side.url}/v1/jobs", content=body, headers=headers, timeout=30)
            if probe.status_code != 202:
                raise SystemExit(f"{side.name} refused the POST: {probe.status_code} {probe.text[:300]}")
        profilers = {
            side.name: Profiler(args.profile, side.child.proc.pid, args.profile_args.split(), side.name)
            for side in sides
            if side is gateway or args.profile_minimal
        }
        ids: dict[str, list[str]] = {}
        for side in sides:  # warm up: imports, caches, connection pools
            run_wrk(
                side.url,
                lua_script("post", side, body, []),
                workdir,
                2,
                args.connections,
                side.child.proc.pid,
            )
        for round_no in range(args.rounds):
            for route in ("post", "get", "list"):
                if route == "get" and not ids:
                    for side in sides:
                        ids[side.name] = asyncio.run(_seed(side.database_url, side.table, args.jobs))
                if route not in routes:
                    continue
                for side in sides:
                    profiler = profilers.get(side.name) if round_no == 0 else None
                    if profiler is not None:
                        profiler.start(route, args.seconds)
                    figures = run_wrk(
                        side.url,
                        lua_script(route, side, body, ids.get(side.name, [])),
                        workdir,
                        args.seconds,
                        args.connections,
                        side.child.proc.pid,
                    )
                    if profiler is not None:
                        profiler.stop()
                    results.setdefault((route, side.name), []).append(figures)
                    f = figures
                    print(
                        f"round {round_no + 1} {LABELS[route]:<24} {side.name:<8} {f.rps:7.0f} req/s  "
                        f"p50 {f.p50_ms:6.1f} ms  p99 {f.p99_ms:7.1f} ms  CPU {f.cpu_ms:5.2f} ms/req  "
                        f"non-2xx {f.non2xx}  errors {f.errors}",
                        file=sys.stderr,
                    )
    finally:
        for side in sides:
            side.child.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)

    def median(route: str, side: str, field: str) -> float:
        return float(statistics.median(getattr(f, field) for f in results[(route, side)]))

    load_after = os.getloadavg()
    auth = "a client key, quotas on" if args.auth else "no client keys (as `make run`)"
    print(
        f"{args.db}, wrk -t1 -c{args.connections}, {args.seconds:g} s per route and side, median of "
        f"{args.rounds} rounds; gateway: WORKERS_ENABLED=false, sandbox upstream, {auth}; "
        f"LOG_LEVEL={args.log_level}, "
        f"access log on; load avg {load_before[0]:.2f} → {load_after[0]:.2f}"
    )
    head = ("route", "gateway req/s", "p50", "p99", "minimal req/s", "p99", "ratio")
    print("{:<24} {:>13} {:>8} {:>8} {:>14} {:>8} {:>6}".format(*head))
    ratios: dict[str, float | None] = {}
    for route in ROUTES:
        if (route, "gateway") not in results:
            ratios[route] = None
            continue
        g, m = median(route, "gateway", "rps"), median(route, "minimal", "rps")
        ratios[route] = round(g / m, 2) if m else None
        g50, g99, m99 = (
            median(route, s, f)
            for s, f in (("gateway", "p50_ms"), ("gateway", "p99_ms"), ("minimal", "p99_ms"))
        )
        print(
            f"{LABELS[route]:<24} {g:13.0f} {g50:6.1f}ms {g99:6.0f}ms {m:14.0f} {m99:6.0f}ms "
            f"{ratios[route]:6.2f}"
        )
    get_p99 = round(median("get", "gateway", "p99_ms"), 1) if ("get", "gateway") in results else None
    print(
        json.dumps(
            {
                "get_ratio": ratios["get"],
                "post_ratio": ratios["post"],
                "list_ratio": ratios["list"],
                "get_p99_ms": get_p99,
                "db": args.db,
            }
        )
    )


if __name__ == "__main__":
    main()
