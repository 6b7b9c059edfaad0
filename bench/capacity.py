"""Capacity benchmark: how well the gateway keeps DashScope's few concurrency slots busy.

A backlog of queued jobs (default 10,000) meets a sandbox that enforces the real service's limits for
wan2.6 (5 tasks running at once, 5 creates/s, 20 task queries/s per account; extra tasks wait PENDING).
One `wan-gateway worker` process drains it for a fixed time; then the same sandbox setup serves the naive
baseline, the official `dashscope` SDK calling `VideoSynthesis.call` from a thread pool and downloading
each video. Figures, from the sandbox's own task records and each side's stored results:

- upstream slot utilization = busy slot-seconds (tasks RUNNING) / (slots × wall time of the run);
- time from upstream completion (the task's end) to the video stored (p50 / p99);
- peak RSS of the worker (or of the baseline process);
- jobs finished, failed, and 429s the sandbox answered.

`--accounts 1,2,4` instead drains the same backlog with 1, 2 and 4 upstream accounts (the sandbox serving
that many keys, the worker given the matching DASHSCOPE_ACCOUNTS), one run per count, and prints jobs per
minute, the ratio to the first count's run, per-account slot utilization (the sandbox's `busy_s` /
(limit × window)) and 429s, then one JSON line.

Run: `.venv/bin/python bench/capacity.py` (the SDK comes with the dev tools); `--help` for the knobs.
Prints figures; asserts nothing. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SANDBOX_KEY = "sk-sandbox"
MODEL = "wan2.6-i2v-flash"
MODEL_FAMILY = "wan2.6"
SLOTS = 5  # wan2.6: 5 tasks running at once per account


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def png_data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 360), (40, 120, 200)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def base_env(workdir: Path, args: argparse.Namespace) -> dict[str, str]:
    keep = ("DASHSCOPE_", "DATABASE_", "SANDBOX_", "STORAGE_", "S3_", "WEBHOOK_", "WORKERS_", "UPSTREAM_")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(keep)},
        "DATABASE_URL": args.database_url or f"sqlite+aiosqlite:///{workdir / 'gateway.db'}",
        "OUTPUT_DIR": str(workdir / "output"),
        "DASHSCOPE_CREDENTIALS_FILE": str(workdir / "none"),
        "SANDBOX_CLIP_CACHE_DIR": str(REPO / ".cache" / "sandbox-clips"),
        "SANDBOX_CLIP_CAPTIONS": "false",  # "backlog 0", "backlog 1", …: one clip, warmed before measuring
        "LOG_LEVEL": "WARNING",
    }


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log = (workdir / f"{name}.log").open("ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)

    def peak_rss_mib(self) -> float | None:
        """The process's high-water mark of resident memory (Linux `VmHWM`)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the process has used so far (Linux `/proc/PID/stat`)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def wait_until(probe: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def start_sandbox(
    workdir: Path, env: dict[str, str], args: argparse.Namespace, accounts: int = 1
) -> tuple[Child, str, Path]:
    port = free_port()
    state = workdir / "sandbox.db"
    sandbox_env = {
        **env,
        "SANDBOX_ENFORCE_LIMITS": "true",
        "SANDBOX_PENDING_S": str(args.pending_s),
        "SANDBOX_RUNNING_S": str(args.running_s),
        "SANDBOX_STATE_PATH": str(state),
        "SANDBOX_API_KEY": SANDBOX_KEY,
        "SANDBOX_ACCOUNT_COUNT": str(accounts),
    }
    child = Child(
        "sandbox",
        [sys.executable, "-m", "app.cli", "sandbox", "--host", "127.0.0.1", "--port", str(port)],
        sandbox_env,
        workdir,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: sandbox_stats(url).get("created_total") is not None, 60, "the sandbox")
    return child, url, state


def sandbox_stats(url: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{url}/_sandbox/stats", headers={"Authorization": f"Bearer {SANDBOX_KEY}"}, timeout=10
    )
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def warm_clip_cache(sandbox_url: str, image: str, args: argparse.Namespace) -> None:
    """Encode the one clip every task returns before measuring (encoding is the sandbox's cost, not ours)."""
    import dashscope
    from dashscope import VideoSynthesis

    dashscope.base_http_api_url = sandbox_url + "/api/v1"
    answer = VideoSynthesis.call(
        api_key=SANDBOX_KEY,
        model=MODEL,
        prompt="warm-up",
        img_url=image,
        duration=args.duration,
        resolution="720P",
    )
    if answer.status_code != 200:
        raise SystemExit(f"warm-up failed: {answer}")
    httpx.get(answer.output.video_url, timeout=60).raise_for_status()


@dataclass
class Task:
    task_id: str
    created_at: float
    start_at: float
    end_at: float | None


def sandbox_tasks(state: Path) -> dict[str, Task]:
    with sqlite3.connect(state) as conn:
        rows = conn.execute(
            "SELECT task_id, created_at, start_at, end_at FROM tasks WHERE canceled_at IS NULL"
        )
        return {r[0]: Task(*r) for r in rows}


def utilization(tasks: list[Task], t0: float, t1: float) -> float:
    busy = 0.0
    for task in tasks:
        end = task.end_at if task.end_at is not None else t1
        busy += max(0.0, min(end, t1) - max(task.start_at, t0))
    return busy / (SLOTS * (t1 - t0))


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


# --- the gateway --------------------------------------------------------------------------------


async def submit_backlog(api: str, count: int, image: str, duration: int) -> float:
    started = time.monotonic()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    async with httpx.AsyncClient(base_url=api, timeout=60) as client:

        async def sender() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = {
                    "model": MODEL,
                    "prompt": f"backlog {i}",
                    "duration": duration,
                    "reference_image": image,
                }
                answer = await client.post("/v1/jobs", json=body)
                if answer.status_code != 202:
                    raise SystemExit(f"submit failed: {answer.status_code} {answer.text}")

        await asyncio.gather(*(sender() for _ in range(16)))
    return time.monotonic() - started


def queue_backlog(
    workdir: Path, env: dict[str, str], args: argparse.Namespace, image: str
) -> tuple[Child, float]:
    """Migrate, start an API with its loops off and queue the backlog through it: the running API and the
    seconds the submissions took."""
    subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], env=env, check=True, cwd=REPO, capture_output=True
    )
    api_port = free_port()
    api = Child(
        "api",
        [sys.executable, "-m", "app.cli", "serve", "--port", str(api_port), "--no-migrate"],
        {**env, "WORKERS_ENABLED": "false"},
        workdir,
    )
    api_url = f"http://127.0.0.1:{api_port}"
    try:
        wait_until(lambda: httpx.get(api_url + "/healthz").status_code == 200, 60, "the API")
        return api, asyncio.run(submit_backlog(api_url, args.jobs, image, args.duration))
    except BaseException:
        api.stop()
        raise


def gateway_run(args: argparse.Namespace, image: str, label: str, settings: dict[str, str]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    env = base_env(workdir, args)
    sandbox, sandbox_url, state = start_sandbox(workdir, env, args)
    children = [sandbox]
    try:
        warm_clip_cache(sandbox_url, image, args)
        upstream = {
            "DASHSCOPE_SANDBOX": "false",
            "DASHSCOPE_API_KEY": SANDBOX_KEY,
            "DASHSCOPE_BASE_URL": sandbox_url + "/api/v1",
            "AUTH_DISABLED": "true",  # measured: the queue and the upstream, not client keys and quotas
        }
        api, submit_s = queue_backlog(workdir, {**env, **upstream}, args, image)
        children.append(api)
        print(f"{label}: {args.jobs} jobs queued through the API in {submit_s:.1f} s", flush=True)

        worker_env = {**env, **upstream, **settings}
        t0 = time.time()
        worker = Child(
            "worker", [sys.executable, "-m", "app.cli", "worker", "--no-migrate"], worker_env, workdir
        )
        children.append(worker)
        time.sleep(args.seconds)
        t1 = time.time()
        peak = worker.peak_rss_mib()
        worker.stop()
        stats = sandbox_stats(sandbox_url)
        tasks = sandbox_tasks(state)
        finished = stored_jobs(env["DATABASE_URL"], t0, t1)
    finally:
        for child in reversed(children):
            child.stop()
    latencies = [stored - end for task_id, stored in finished if (end := _end(tasks, task_id)) is not None]
    window_tasks = [t for t in tasks.values() if t.created_at >= t0]
    return {
        "who": label,
        "utilization": utilization(window_tasks, t0, t1),
        "latencies": latencies,
        "done": len(finished),
        "failed": None,
        "peak_rss_mib": peak,
        "responses_429": stats["responses"].get("429", 0),
        "upstream_calls": stats["upstream_calls"],
        "created": stats["created_total"],
        "wall_s": t1 - t0,
    }


def stored_jobs(database_url: str, t0: float, t1: float) -> list[tuple[str, float]]:
    """(task_id, stored at) of jobs that succeeded within the run."""
    if not database_url.startswith("sqlite"):
        return asyncio.run(_stored_jobs_async(database_url, t0, t1))
    path = database_url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT task_id, finished_at FROM jobs WHERE status = 'succeeded'").fetchall()
    out = []
    for task_id, finished in rows:
        # SQLite holds naive UTC text.
        at = datetime.fromisoformat(finished + "+00:00").timestamp() if finished else None
        if at is not None and t0 <= at <= t1:
            out.append((task_id, at))
    return out


async def _stored_jobs_async(database_url: str, t0: float, t1: float) -> list[tuple[str, float]]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT task_id, finished_at FROM jobs WHERE status = 'succeeded'"))
        ).all()
    await engine.dispose()
    return [(r[0], r[1].timestamp()) for r in rows if t0 <= r[1].timestamp() <= t1]


# --- several upstream accounts -----------------------------------------------------------------


def account_key(n: int) -> str:
    """The sandbox's key of account n (docs/SANDBOX.md "Accounts")."""
    return SANDBOX_KEY if n == 1 else f"{SANDBOX_KEY}-{n}"


def accounts_run(args: argparse.Namespace, image: str, count: int) -> dict[str, Any]:
    """One drain of the backlog by `count` accounts: the sandbox's per-account figures over the window."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-accounts{count}-"))
    env = base_env(workdir, args)
    sandbox, sandbox_url, _state = start_sandbox(workdir, env, args, accounts=count)
    children = [sandbox]
    pool = [
        {"name": f"acct{n}", "api_key": account_key(n), "base_url": sandbox_url + "/api/v1"}
        for n in range(1, count + 1)
    ]
    try:
        warm_clip_cache(sandbox_url, image, args)
        upstream = {
            "DASHSCOPE_SANDBOX": "false",
            "DASHSCOPE_API_KEY": SANDBOX_KEY,
            "DASHSCOPE_BASE_URL": sandbox_url + "/api/v1",
            "DASHSCOPE_ACCOUNTS": json.dumps(pool),
            "AUTH_DISABLED": "true",
        }
        api, submit_s = queue_backlog(workdir, {**env, **upstream}, args, image)
        children.append(api)
        api.stop()  # the API's process competes with the worker for the 2 cores otherwise
        children.remove(api)
        print(f"{count} account(s): {args.jobs} jobs queued in {submit_s:.1f} s", flush=True)
        # Enough jobs at once for every slot of every account plus the downloads behind them: the slots,
        # not the worker's own concurrency, must be the bottleneck.
        worker_env = {**env, **upstream, "WORKER_CONCURRENCY": str(args.worker_concurrency)}
        worker = Child(
            "worker", [sys.executable, "-m", "app.cli", "worker", "--no-migrate"], worker_env, workdir
        )
        children.append(worker)
        # --settle-s: the window opens after the worker's start-up and first tasks (it learns how long
        # tasks run from the first ones), so the figures are the steady state; 0 counts from the start.
        time.sleep(args.settle_s)
        httpx.delete(
            f"{sandbox_url}/_sandbox/stats", headers={"Authorization": f"Bearer {SANDBOX_KEY}"}, timeout=10
        ).raise_for_status()
        t0 = time.time()
        cpu0 = worker.cpu_s(), sandbox.cpu_s()
        profiler = start_profile(args, worker, count)
        time.sleep(args.seconds)
        stats = sandbox_stats(sandbox_url)  # read before the worker stops: the window is the drain only
        t1 = time.time()
        cpu1 = worker.cpu_s(), sandbox.cpu_s()
        if profiler is not None:
            profiler.wait(timeout=60)
        finished = stored_jobs(env["DATABASE_URL"], t0, t1)
        load = os.getloadavg()[0]
    finally:
        for child in reversed(children):
            child.stop()
    window = float(stats["window_s"])
    per_account = []
    for name in sorted(stats["accounts"], key=int):
        account = stats["accounts"][name]
        family = account["families"].get(MODEL_FAMILY, {"limit": SLOTS, "busy_s": 0.0, "peak": 0})
        limit = family["limit"] or SLOTS
        per_account.append(
            {
                "account": int(name),
                "utilization": family["busy_s"] / (limit * window),
                "peak": family["peak"],
                "created": account["created_total"],
                "throttled": account["throttled"]["create"] + account["throttled"]["task_api"],
            }
        )
    return {
        "accounts": count,
        "window_s": window,
        "done": len(finished),
        "jobs_per_min": len(finished) / (t1 - t0) * 60,
        "per_account": per_account,
        "responses_429": stats["responses"].get("429", 0),
        "load_1m": load,
        # CPU per second of window: 1.0 = one core, the machine has os.cpu_count()
        "worker_cpu": (cpu1[0] - cpu0[0]) / (t1 - t0),
        "sandbox_cpu": (cpu1[1] - cpu0[1]) / (t1 - t0),
    }


def start_profile(args: argparse.Namespace, worker: Child, count: int) -> subprocess.Popen[bytes] | None:
    """`--profile-dir`: py-spy samples the worker over the window (collapsed stacks, a file per count)."""
    if not args.profile_dir:
        return None
    out = Path(args.profile_dir) / f"worker-{count}-accounts.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    argv = [str(spy), "record", "--pid", str(worker.proc.pid), "--duration", str(int(args.seconds))]
    argv += ["--format", "raw", "--rate", "50", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def accounts_report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"backlog {args.jobs} jobs of {MODEL} per count; sandbox tasks PENDING {args.pending_s} s + RUNNING "
        f"{args.running_s} s; per account {SLOTS} running, 5 creates/s, 20 queries/s; {args.seconds:.0f} s "
        f"window per count after {args.settle_s:.0f} s settling; WORKER_CONCURRENCY={args.worker_concurrency}"
    )
    base = rows[0]["jobs_per_min"] or float("nan")
    header = f"{'accounts':>8} {'done':>5} {'jobs/min':>9} {'ratio':>6} {'429s':>5} {'load':>5}"
    print(header + f" {'worker':>6} {'sandbox':>7}  slot utilization per account")
    for row in rows:
        row["ratio"] = row["jobs_per_min"] / base
        utils = " ".join(f"#{a['account']} {a['utilization'] * 100:.1f}%" for a in row["per_account"])
        print(
            f"{row['accounts']:8d} {row['done']:5d} {row['jobs_per_min']:9.1f} {row['ratio']:5.2f}× "
            f"{row['responses_429']:5d} {row['load_1m']:5.2f} {row['worker_cpu']:6.2f} "
            f"{row['sandbox_cpu']:7.2f}  {utils}"
        )
    print("(worker, sandbox: CPU cores each used over the window; the machine has", os.cpu_count(), "cores)")
    print(json.dumps({"capacity_accounts": rows}, separators=(",", ":")))


# --- the SDK baseline ---------------------------------------------------------------------------


def baseline_run(args: argparse.Namespace, image: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-sdk-"))
    env = base_env(workdir, args)
    sandbox, sandbox_url, state = start_sandbox(workdir, env, args)
    try:
        warm_clip_cache(sandbox_url, image, args)
        result_path = workdir / "baseline.json"
        t0 = time.time()
        subprocess.run(
            [
                sys.executable,
                str(REPO / "bench" / "sdk_baseline.py"),
                "--base-url",
                sandbox_url + "/api/v1",
                "--api-key",
                SANDBOX_KEY,
                "--model",
                MODEL,
                "--duration",
                str(args.duration),
                "--threads",
                str(args.sdk_threads),
                "--jobs",
                str(args.jobs),
                "--seconds",
                str(args.seconds),
                "--image-file",
                str(_write(workdir / "image.txt", image)),
                "--videos",
                str(workdir / "videos"),
                "--out",
                str(result_path),
            ],
            env=env,
            check=True,
            cwd=REPO,
        )
        t1 = time.time()
        result = json.loads(result_path.read_text())
        stats = sandbox_stats(sandbox_url)
        tasks = sandbox_tasks(state)
    finally:
        sandbox.stop()
    latencies = [stored - end for tid, stored in result["stored"] if (end := _end(tasks, tid)) is not None]
    window_tasks = [t for t in tasks.values() if t.created_at >= t0]
    return {
        "who": f"dashscope SDK, {args.sdk_threads} threads",
        "utilization": utilization(window_tasks, t0, min(t1, t0 + args.seconds)),
        "latencies": latencies,
        "done": len(result["stored"]),
        "failed": result["failed"],
        "peak_rss_mib": result["peak_rss_mib"],
        "responses_429": stats["responses"].get("429", 0),
        "upstream_calls": stats["upstream_calls"],
        "created": stats["created_total"],
        "wall_s": args.seconds,
    }


def _end(tasks: dict[str, Task], task_id: str) -> float | None:
    task = tasks.get(task_id)
    return None if task is None else task.end_at


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"backlog {args.jobs} jobs of {MODEL} ({args.duration} s, 720P); sandbox tasks PENDING "
        f"{args.pending_s} s + RUNNING {args.running_s} s; limits enforced: {SLOTS} running, 5 creates/s, "
        f"20 queries/s; {args.seconds:.0f} s per run"
    )
    print(
        f"{'':40} {'slot util':>9} {'done':>5} {'failed':>6} {'p50 end→stored':>15} {'p99':>8} "
        f"{'peak RSS':>9} {'429s':>5} {'calls':>6}"
    )
    for row in rows:
        lat = row["latencies"]
        print(
            f"{row['who']:40} {row['utilization'] * 100:8.1f}% {row['done']:5d} {row['failed'] or 0:6d} "
            f"{percentile(lat, 50):14.2f}s {percentile(lat, 99):7.2f}s {row['peak_rss_mib'] or 0:8.0f}M "
            f"{row['responses_429']:5d} {row['upstream_calls']:6d}"
        )
    baseline = next((r for r in rows if r["who"].startswith("dashscope SDK")), None)
    if baseline and baseline["utilization"]:
        for row in rows:
            if row is not baseline:
                ratio = row["utilization"] / baseline["utilization"]
                print(f"{row['who']} / SDK slot utilization: {ratio:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="backlog size")
    parser.add_argument("--seconds", type=float, default=600, help="how long each side runs")
    parser.add_argument("--pending-s", type=float, default=1.0, help="sandbox: PENDING time of a task")
    # 33 s in all: not a point of the SDK's polling schedule (1, 2, 4, 6, 8, 12, 16, 20, 25, 30, 35 … s),
    # which would flatter it; real tasks take 1–5 min.
    parser.add_argument("--running-s", type=float, default=32.0, help="sandbox: RUNNING time of a task")
    parser.add_argument("--duration", type=int, default=5, help="video seconds per job")
    parser.add_argument("--sdk-threads", type=int, default=SLOTS, help="baseline thread pool size")
    parser.add_argument("--database-url", default=None, help="gateway database (default: a SQLite file)")
    parser.add_argument("--only", choices=("gateway", "sdk"), default=None)
    parser.add_argument(
        "--queue-ahead", action="store_true", help="also run the gateway with one task queued upstream"
    )
    parser.add_argument(
        "--accounts",
        default=None,
        help="comma list of account counts, e.g. 1,2,4: one drain per count instead of gateway vs SDK",
    )
    parser.add_argument(
        "--worker-concurrency", type=int, default=32, help="with --accounts: WORKER_CONCURRENCY"
    )
    parser.add_argument(
        "--settle-s", type=float, default=0.0, help="with --accounts: drain seconds before the window"
    )
    parser.add_argument(
        "--profile-dir",
        default=None,
        help="with --accounts: py-spy records the worker over each window (collapsed stacks, needs root)",
    )
    args = parser.parse_args()
    image = png_data_uri()
    if args.accounts:
        try:
            counts = [int(part) for part in args.accounts.split(",")]
        except ValueError:
            parser.error("--accounts: a comma list of whole numbers, e.g. 1,2,4")
        if not counts or any(not 1 <= n <= 64 for n in counts):
            parser.error("--accounts: each count between 1 and 64")
        accounts_report([accounts_run(args, image, n) for n in counts], args)
        return
    rows = []
    if args.only in (None, "gateway"):
        rows.append(gateway_run(args, image, "gateway, defaults (1 worker)", {}))
        if args.queue_ahead:
            # One task queued upstream beyond the 5 running: a freed slot never waits for a create.
            ahead = {"UPSTREAM_MAX_INFLIGHT": "wan2.6=6"}
            rows.append(gateway_run(args, image, "gateway, UPSTREAM_MAX_INFLIGHT=wan2.6=6", ahead))
    if args.only in (None, "sdk"):
        rows.append(baseline_run(args, image))
    report(rows, args)


if __name__ == "__main__":
    main()
