"""Real gateway processes for scale-out and crash tests: a standalone sandbox, API replicas and workers.

Everything listens on 127.0.0.1. Processes share one database (the test's: SQLite file or the throwaway
Postgres), one store and one sandbox, exactly as replicas of a deployment do; tests kill them with
SIGKILL or stop them with SIGTERM and look at what the database, the store and the sandbox hold.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.tls import client_context
from tests.conftest import CLIP_CACHE, free_port
from tests.helpers import wait_for

SANDBOX_KEY = "sk-sandbox"
#: The client keys every API process of a cluster accepts (tenant "scaleout"; "ops" may read /metrics).
CLIENT_KEY = "wg_scaleout-client-key-0123456789abcdef"
ADMIN_KEY = "wg_scaleout-admin-key-0123456789abcdef01"
CLIENT_HEADERS = {"Authorization": f"Bearer {CLIENT_KEY}"}
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
#: Settings of ours that must not leak in from the developer's shell into a child process.
_OURS = ("DASHSCOPE_", "DATABASE_", "SANDBOX_", "STORAGE_", "S3_", "WEBHOOK_", "WORKERS_", "UPSTREAM_")


class ManagedProcess:
    """One `python -m app.cli ...` child, its output appended to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, leases left behind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait for the exit; returns the exit code."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )


def base_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(_OURS)},
        "DATABASE_URL": database_url,
        "DASHSCOPE_CREDENTIALS_FILE": str(tmp_path / "none"),
        "OUTPUT_DIR": str(tmp_path / "output"),
        "SANDBOX_CLIP_CACHE_DIR": str(CLIP_CACHE),
        "SANDBOX_CLIP_CAPTIONS": "false",  # one clip per geometry, whatever the prompt and image
        "SANDBOX_CLIP_PICTURES": "false",
        "LOG_LEVEL": "INFO",
    }


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5, verify=client_context()) as client:
            return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class Cluster:
    """A standalone sandbox plus any number of API and worker processes on one database."""

    tmp_path: Path
    env: dict[str, str]
    sandbox_port: int = field(default_factory=free_port)
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}/api/v1"

    def _process(self, name: str, args: list[str], **env: str) -> ManagedProcess:
        process = ManagedProcess(name, args, {**self.env, **env}, self.tmp_path / f"{name}.log")
        self.processes.append(process)
        return process

    async def start_sandbox(self, **env: str) -> ManagedProcess:
        process = self._process(
            "sandbox",
            ["sandbox", "--host", "127.0.0.1", "--port", str(self.sandbox_port)],
            SANDBOX_STATE_PATH=str(self.tmp_path / "sandbox.db"),
            SANDBOX_API_KEY=SANDBOX_KEY,
            **env,
        )
        process.start()
        await wait_for(self._sandbox_up, within=60, what="the sandbox to start")
        return process

    async def _sandbox_up(self) -> bool:
        try:
            await self.sandbox_stats()
        except (httpx.TransportError, httpx.HTTPStatusError):
            return False
        return True

    @property
    def upstream_env(self) -> dict[str, str]:
        """How gateway processes reach the shared sandbox (as a real upstream, with its key), and the
        client keys they accept."""
        return {
            "DASHSCOPE_SANDBOX": "false",
            "DASHSCOPE_API_KEY": SANDBOX_KEY,
            "DASHSCOPE_BASE_URL": self.sandbox_url,
            # A real upstream key needs client keys: the API refuses to start without them.
            "GATEWAY_API_KEYS": f"scaleout:{CLIENT_KEY}",
            "GATEWAY_ADMIN_KEYS": f"ops:{ADMIN_KEY}",
        }

    async def start_api(self, name: str = "api", **env: str) -> tuple[ManagedProcess, str]:
        port = free_port()
        process = self._process(
            name,
            ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"],
            **{"WORKERS_ENABLED": "false", **self.upstream_env, **env},
        )
        process.start()
        url = f"http://127.0.0.1:{port}"
        await wait_for(lambda: _answers(url + "/healthz"), within=60, what=f"{name} to start")
        return process, url

    async def start_worker(self, name: str, **env: str) -> tuple[ManagedProcess, str]:
        port = free_port()
        process = self._process(
            name, ["worker", "--health-port", str(port), "--no-migrate"], **{**self.upstream_env, **env}
        )
        process.start()
        url = f"http://127.0.0.1:{port}"
        await wait_for(lambda: _answers(url + "/readyz"), within=60, what=f"{name} to be ready")
        return process, url

    async def sandbox_stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5, verify=client_context()) as client:
            response = await client.get(
                f"http://127.0.0.1:{self.sandbox_port}/_sandbox/stats",
                headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
            )
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    async def clear_faults(self) -> None:
        """Stop injecting faults (so the test's own questions to the sandbox get straight answers)."""
        async with httpx.AsyncClient(timeout=5, verify=client_context()) as client:
            response = await client.delete(
                f"http://127.0.0.1:{self.sandbox_port}/_sandbox/faults",
                headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
            )
            response.raise_for_status()

    async def upstream_tasks(self) -> list[dict[str, Any]]:
        """Every task the sandbox holds (DashScope's task list, all pages)."""
        tasks: list[dict[str, Any]] = []
        async with httpx.AsyncClient(timeout=10, verify=client_context()) as client:
            page = 1
            while True:
                response = await client.get(
                    f"{self.sandbox_url}/tasks",
                    params={"page_no": page, "page_size": 100},
                    headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
                )
                response.raise_for_status()
                body = response.json()
                tasks += body["data"]
                if page >= int(body.get("total_page", 1)):
                    return tasks
                page += 1

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path, database_url: str, **env: str) -> AsyncIterator[Cluster]:
    running = Cluster(tmp_path, {**base_env(tmp_path, database_url), **env})
    try:
        yield running
    finally:
        running.stop_all()


@contextlib.contextmanager
def showing_logs_on_failure(running: Cluster) -> Iterator[None]:
    """Print the processes' logs when the test fails: a chaos test's failure is read in them."""
    try:
        yield
    except BaseException:
        print(running.logs())
        raise
