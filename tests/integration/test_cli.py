"""The `wan-gateway` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from app.tls import client_context
from tests.conftest import CLIP_CACHE, REPO, Served, free_port
from tests.helpers import run_cli, wait_for

run = run_cli


async def test_webhook_secret_is_generated_once_and_shared(gateway: Served) -> None:
    env = {**os.environ, "DATABASE_URL": gateway.gateway.settings.database_url}
    env.pop("WEBHOOK_SECRET", None)
    first = run("webhook-secret", env=env).strip()
    assert first.startswith("whsec_")
    assert run("webhook-secret", env=env).strip() == first
    # The running gateway signs with that same secret.
    assert await gateway.gateway.secrets.get() == [first]
    env["WEBHOOK_SECRET"] = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    assert run("webhook-secret", env=env).strip() == env["WEBHOOK_SECRET"]


def test_help_lists_the_commands() -> None:
    out = run("--help", env=dict(os.environ))
    for command in ("serve", "migrate", "sandbox", "webhook-secret", "openapi", "generate", "jobs", "usage"):
        assert command in out


def _child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A child's settings: everything under tmp_path, the shared clip cache, no developer credentials."""
    return {
        **os.environ,
        "OUTPUT_DIR": str(tmp_path / "output"),
        "SANDBOX_STATE_PATH": str(tmp_path / "sandbox.db"),
        "SANDBOX_CLIP_CACHE_DIR": str(CLIP_CACHE),
        "SANDBOX_CLIP_CAPTIONS": "false",  # one clip per geometry, whatever the prompt and image
        "SANDBOX_CLIP_PICTURES": "false",
        "DASHSCOPE_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        **extra,
    }


@contextlib.asynccontextmanager
async def _child(*args: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", *args, env=env, cwd=REPO, stderr=asyncio.subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_logs_every_request_with_its_sandbox_and_no_key(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """`wan-gateway serve` in its default mode (embedded sandbox), LOG_FORMAT=json: every line of its log is
    a JSON object, an access line per request with the id echoed in `X-Request-ID`, none with a key, even
    one passed as a query parameter."""
    key = "Q7rT0pLm9XcV2bN8kJ4hG6fD1sA3zW5y"
    shutil.copy(sqlite_template, tmp_path / "gateway.db")
    port = free_port()
    env = _child_env(
        tmp_path,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
        GATEWAY_API_KEYS=f"alice:{key}",
        WORKERS_ENABLED="false",
        LOG_FORMAT="json",
    )
    async with _child("serve", "--port", str(port), "--no-migrate", env=env) as process:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=10, verify=client_context()
        ) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, within=60, what="wan-gateway serve to answer")
            auth = {"Authorization": f"Bearer {key}"}
            listed = await client.get("/v1/jobs?limit=1", headers={**auth, "X-Request-ID": "cli-test-1"})
            assert listed.status_code == 200
            refused = await client.get(f"/v1/jobs/job_x?api_key={key}", headers=auth)
            assert refused.status_code == 422 and key not in refused.text
            nowhere = await client.get("/nowhere")
            assert nowhere.status_code == 404
        process.terminate()
        assert process.stderr is not None
        log = (await asyncio.wait_for(process.stderr.read(), 30)).decode()
    lines = [json.loads(line) for line in log.splitlines()]  # every line: one JSON object
    access = {line["path"]: line for line in lines if line["logger"] == "app.access"}
    answers = {"/v1/jobs?limit=1": listed, "/v1/jobs/job_x?api_key=***": refused, "/nowhere": nowhere}
    for path, answer in answers.items():
        assert access[path]["request_id"] == answer.headers["x-request-id"], log
        assert access[path]["status"] == answer.status_code and access[path]["method"] == "GET"
    assert access["/v1/jobs?limit=1"]["request_id"] == "cli-test-1"
    served = [line for line in lines if line["logger"] == "app.access" and line["path"] != "/healthz"]
    assert len(served) == len(answers), served
    assert key not in log


async def test_sandbox_shows_its_public_key(tmp_path: Path) -> None:
    """`wan-gateway sandbox` tells the user the key to configure: `sk-sandbox` is public, not redacted."""
    port = free_port()
    async with _child("sandbox", "--port", str(port), env=_child_env(tmp_path)) as process:
        assert process.stderr is not None
        async with asyncio.timeout(60):
            while "base URL" not in (line := (await process.stderr.readline()).decode()):
                assert line, "the sandbox exited before serving"
        assert f"base URL http://127.0.0.1:{port}/api/v1, API key sk-sandbox" in line, line
