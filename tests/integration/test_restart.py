"""Kill -9 the real `wan-gateway serve` process at several points and start it again: every job resumes,
finishes once, and each makes exactly one upstream task (the embedded sandbox keeps its tasks on disk);
a budget's reservations are settled or released once."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.responses import Response

from app.sandbox.config import SandboxConfig
from app.sandbox.server import SandboxServer
from app.tls import client_context
from tests.conftest import CLIP_CACHE, free_port
from tests.helpers import data_uri, wait_for
from tests.processes import ManagedProcess
from tests.receiver import receiver

pytestmark = pytest.mark.slow


class GatewayProcess(ManagedProcess):
    """`wan-gateway serve` with its loops and embedded sandbox, as `make run` starts it."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        super().__init__("gateway", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
        self.port = port


def gateway_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "DATABASE_", "SANDBOX_"))},
        "DATABASE_URL": database_url,
        "DASHSCOPE_SANDBOX": "true",
        "DASHSCOPE_CREDENTIALS_FILE": str(tmp_path / "none"),
        "OUTPUT_DIR": str(tmp_path / "output"),
        "SANDBOX_STATE_PATH": str(tmp_path / "sandbox.db"),
        "SANDBOX_CLIP_CACHE_DIR": str(CLIP_CACHE),
        "SANDBOX_CLIP_CAPTIONS": "false",  # "job 0", "job 1", …: one clip for all of them
        "SANDBOX_CLIP_PICTURES": "false",
        # SANDBOX_PORT unset, as with `make run`: the embedded sandbox comes back on another port, so
        # video URLs stored before a kill point nowhere and must be re-read from the task.
        "SANDBOX_PENDING_S": "0.5",
        "SANDBOX_RUNNING_S": "1.5",
        "POLL_MIN_INTERVAL_S": "0.1",
        "POLL_MAX_INTERVAL_S": "0.3",
        "LEASE_S": "1.5",  # a dead process's claims are taken over quickly
        "RECONCILE_GRACE_S": "1.0",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def process(tmp_path: Path, database_url: str) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(gateway_env(tmp_path, database_url), free_port(), tmp_path / "gateway.log")
    yield gateway
    gateway.stop()


@pytest.mark.one_database(reason="kill -9 on postgres in scaleout")
async def test_kill_9_at_several_points_then_every_job_finishes_once(process: GatewayProcess) -> None:
    base = f"http://127.0.0.1:{process.port}"
    png = data_uri(640, 360)
    async with httpx.AsyncClient(base_url=base, timeout=10, verify=client_context()) as client:

        async def up() -> bool:
            try:
                return (await client.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        async def jobs() -> list[dict[str, Any]]:
            return [(await client.get(f"/v1/jobs/{i}")).json() for i in ids]

        process.start()
        await wait_for(up, within=60, what="the gateway to start")
        ids = []
        for i in range(4):
            response = await client.post(
                "/v1/jobs",
                json={"prompt": f"job {i}", "duration": 2, "size": "1280*720", "reference_image": png},
            )
            ids.append(response.json()["id"])

        # 1: right after accepting the jobs, before or while they are submitted.
        process.kill()
        process.start()
        await wait_for(up, within=60, what="the gateway to restart")

        # 2: once some task runs upstream.
        async def some_running() -> bool:
            return any(j["status"] in ("submitted", "running") for j in await jobs())

        await wait_for(some_running, within=60, what="a job to be upstream")
        process.kill()
        process.start()
        await wait_for(up, within=60, what="the gateway to restart again")

        # 3: as soon as one job is being stored or done, once more.
        async def some_late() -> bool:
            return any(j["status"] in ("storing", "succeeded") for j in await jobs())

        await wait_for(some_late, within=60, what="a job to reach storing")
        process.kill()
        process.start()
        await wait_for(up, within=60, what="the gateway to restart a third time")

        async def all_done() -> list[dict[str, Any]] | None:
            current = await jobs()
            return (
                current if all(j["status"] in ("succeeded", "failed", "canceled") for j in current) else None
            )

        final = await wait_for(all_done, within=120, what="every job to finish")
        assert [j["status"] for j in final] == ["succeeded"] * 4, [j.get("error") for j in final]
        for job in final:
            video = await client.get(f"/v1/jobs/{job['id']}/content")
            assert video.status_code == 200 and len(video.content) == job["result"]["bytes"]

    process.stop()
    # What upstream holds: open the sandbox's state file with a fresh sandbox and list every task.
    config = SandboxConfig(
        state_path=Path(process.env["SANDBOX_STATE_PATH"]),
        clip_cache_dir=CLIP_CACHE,
        clip_captions=False,
        clip_pictures=False,
    )
    async with (
        SandboxServer(config) as upstream,
        httpx.AsyncClient(timeout=10, verify=client_context()) as client,
    ):
        listed = await client.get(
            f"{upstream.base_url}/tasks",
            params={"page_size": 100},
            headers={"Authorization": f"Bearer {upstream.api_key}"},
        )
    tasks = listed.json()["data"]
    assert len(tasks) == 4, "each job made exactly one upstream task"
    assert {t["task_id"] for t in tasks} == {j["upstream"]["task_id"] for j in final}


SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.one_database(reason="kill -9 on postgres in scaleout")
async def test_kill_9_between_the_terminal_status_and_its_delivery(tmp_path: Path, database_url: str) -> None:
    """The receiver refuses the first attempt; the process dies before the retry. After a restart the
    event is delivered, under the webhook-id of the attempt made before the crash."""
    env = {
        **gateway_env(tmp_path, database_url),
        "WEBHOOK_SECRET": SECRET,
        "ALLOW_PRIVATE_URLS": "true",
        "WEBHOOK_RETRY_SCHEDULE": "0,3,3,3",
        "WEBHOOK_TIMEOUT_S": "2",  # a dead sender's lease (timeout + 5 s) lapses quickly
    }
    gateway = GatewayProcess(env, free_port(), tmp_path / "gateway.log")
    refusing = True
    async with receiver(SECRET, lambda n: Response(status_code=503 if refusing else 204)) as hook:
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{gateway.port}", timeout=10, verify=client_context()
            ) as client:

                async def up() -> bool:
                    try:
                        return (await client.get("/healthz")).status_code == 200
                    except httpx.TransportError:
                        return False

                gateway.start()
                await wait_for(up, within=60, what="the gateway to start")
                body = {
                    "prompt": "p",
                    "duration": 2,
                    "size": "1280*720",
                    "reference_image": data_uri(640, 360),
                }
                response = await client.post("/v1/jobs", json={**body, "webhook_url": hook.url})
                job_id = response.json()["id"]

                async def refused_once() -> bool:
                    return any(r.type == "job.succeeded" for r in hook.requests)

                await wait_for(refused_once, within=60, what="the first, refused attempt")
                gateway.kill()  # before the retry, 3 s later
                first_id = hook.requests[-1].webhook_id
                refusing = False
                gateway.start()
                await wait_for(up, within=60, what="the gateway to restart")

                async def delivered() -> bool:
                    return bool(hook.delivered)

                await wait_for(delivered, within=60, what="delivery after the restart")
                assert [r.webhook_id for r in hook.delivered] == [first_id]
                assert hook.delivered[0].verified is not None
                assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "succeeded"
        finally:
            gateway.stop()


async def test_kill_9_after_terminal_writes_settles_each_budget_reservation_once(
    tmp_path: Path, database_url: str
) -> None:
    """A 3.00 CNY daily budget, two 1.50 jobs (one fails upstream, one succeeds); the process dies right
    after each terminal write. After the restarts the failure released its 1.50 and the success spent
    1.50, once: one more job fits, the next is refused with exactly those figures."""
    key = "carol-key-" + "c" * 32
    env = {
        **gateway_env(tmp_path, database_url),
        "GATEWAY_API_KEYS": f"carol:{key}",
        "QUOTA_BUDGET": "3",
        "QUOTA_BUDGET_PERIOD": "day",
    }
    gateway = GatewayProcess(env, free_port(), tmp_path / "gateway.log")
    flash = {"model": "wan2.6-i2v-flash", "duration": 5, "size": "1280*720", "audio": True}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway.port}",
            timeout=10,
            verify=client_context(),
            headers={"Authorization": f"Bearer {key}"},
        ) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            async def submit(prompt: str, seed: int) -> httpx.Response:
                body = {"prompt": prompt, "reference_image": data_uri(640, 360), "seed": seed, **flash}
                return await client.post("/v1/jobs", json=body)

            async def ended(count: int) -> bool:
                finished = [(await client.get(f"/v1/jobs/{i}")).json()["status"] for i in ids]
                return sum(s in ("succeeded", "failed", "canceled") for s in finished) >= count

            gateway.start()
            await wait_for(up, within=60, what="the gateway to start")
            ids = [(await submit(p, s)).json()["id"] for p, s in (("a [sandbox:FAILED]", 1), ("b", 2))]
            for count in (1, 2):
                await wait_for(functools.partial(ended, count), within=60, what=f"{count} job(s) to end")
                gateway.kill()  # at once after the terminal write: before its webhooks, feed, anything
                gateway.start()
                await wait_for(up, within=60, what="the gateway to restart")

            costs = [(await client.get(f"/v1/jobs/{i}")).json()["cost"]["amount"] for i in ids]
            assert costs == ["0", "1.50"]
            fits = await submit("c [sandbox:stuck]", 3)
            assert fits.status_code == 202, fits.text
            refused = await submit("d", 4)
            assert refused.status_code == 402, refused.text
            figures = refused.json()
            assert (figures["limit"], figures["spent"], figures["reserved"]) == ("3.00", "1.50", "1.50")
    finally:
        gateway.stop()
