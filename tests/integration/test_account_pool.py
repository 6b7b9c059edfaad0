"""A pool of two upstream accounts: queued jobs spread over both, each within its own limits, and every
job's task lives (and is polled, and reconciled) on the account it was sent to."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.jobs.models import Job
from app.providers import health as account_health
from tests.conftest import Served, make_settings, serve
from tests.helpers import data_uri, wait_for


async def test_two_accounts_share_sixteen_jobs_within_their_limits(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        sandbox_account_count=2,  # no DASHSCOPE_ACCOUNTS: the gateway pools the sandbox's two keys
        sandbox_enforce_limits=True,
        upstream_max_inflight="wan2.6=4",  # per account: 8 at once over the pool, 16 need two rounds
        worker_batch_size=32,
        sandbox_pending_s=0.05,
        sandbox_running_s=0.3,
    )
    async with serve(settings) as served:
        gateway = served.gateway
        assert gateway.accounts.names == ["sandbox-1", "sandbox-2"]
        # Creates that make their task but answer 500: each is looked up on the account it went to (on the
        # other one it cannot be found, and would be sent again: more than 16 tasks).
        served.sandbox.faults.add("create_after:500*4")
        png = data_uri(640, 360)
        ids = [await served.submit(png, prompt=f"pool {i}") for i in range(16)]

        async def all_done() -> list[dict[str, object]] | None:
            await gateway.poller.run_once()
            jobs = [await served.job(job_id) for job_id in ids]
            return jobs if all(j["status"] in ("succeeded", "failed") for j in jobs) else None

        jobs = await wait_for(all_done, within=90, what="16 pooled jobs to finish")
        assert [j["status"] for j in jobs] == ["succeeded"] * 16, [j.get("error") for j in jobs]

        async with gateway.sessions() as session:
            rows = (await session.execute(select(Job.account, Job.task_id).where(Job.id.in_(ids)))).all()
        placed = {
            name: [task for account, task in rows if account == name] for name in ("sandbox-1", "sandbox-2")
        }
        assert sorted(len(v) for v in placed.values())[0] >= 4, placed  # each account got a share
        assert sum(len(v) for v in placed.values()) == 16
        assert served.sandbox.stats.created_total == 16  # no ambiguous create was sent twice
        assert served.sandbox.stats.injected == {"create_after:500": 4}  # … all four reconciled

        sandbox = served.sandbox
        keys = dict(zip(("sandbox-1", "sandbox-2"), sandbox.config.api_keys, strict=True))
        async with httpx.AsyncClient(base_url=sandbox.public_url, timeout=10) as upstream:
            # A task exists on its own account only: to the other key it is UNKNOWN.
            for own, other in (("sandbox-1", "sandbox-2"), ("sandbox-2", "sandbox-1")):
                for task_id in placed[own][:2]:
                    for key, expected in ((keys[own], "SUCCEEDED"), (keys[other], "UNKNOWN")):
                        answer = await upstream.get(
                            f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
                        )
                        assert answer.json()["output"]["task_status"] == expected, (own, key, answer.text)
            stats = (
                await upstream.get(
                    "/_sandbox/stats", headers={"Authorization": f"Bearer {keys['sandbox-1']}"}
                )
            ).json()
        for number in ("1", "2"):
            account = stats["accounts"][number]
            assert account["created_total"] == len(placed[f"sandbox-{number}"]), account
            assert account["throttled"] == {"create": 0, "task_api": 0}, account
            family = account["families"]["wan2.6"]
            assert 0 < family["peak"] <= family["limit"], account
            assert family["peak"] <= 4, account  # the gateway's cap, per account (the sandbox's is 5)
        assert stats["responses"].get("429", 0) == 0, stats["responses"]


async def test_cancel_goes_to_the_jobs_own_account(tmp_path: Path, database_url: str) -> None:
    """wan2.2 runs 2 tasks at once per account; a gateway cap of 3 leaves one task PENDING on each account.
    Canceling the second account's works only there (the first would answer UnsupportedOperation: 409)."""
    settings = make_settings(
        tmp_path,
        database_url,
        sandbox_account_count=2,
        sandbox_enforce_limits=True,
        upstream_max_inflight="wan2.2=3",
        worker_batch_size=16,
    )
    async with serve(settings) as served:
        gateway = served.gateway
        body = {"model": "wan2.2-i2v-flash", "resolution": "480P", "reference_image": data_uri(640, 360)}
        ids = []
        for i in range(6):
            response = await served.client.post("/v1/jobs", json={**body, "prompt": f"[sandbox:stuck] {i}"})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])

        async def one_pending_each() -> dict[str | None, str] | None:
            await gateway.poller.run_once()
            async with gateway.sessions() as session:
                rows = (await session.execute(select(Job.id, Job.account, Job.upstream_status))).all()
            pending = {account: job_id for job_id, account, status in rows if status == "PENDING"}
            running = [job_id for job_id, _, status in rows if status == "RUNNING"]
            return pending if len(pending) == 2 and len(running) == 4 else None

        pending = await wait_for(one_pending_each, within=30, what="two running and one pending per account")
        response = await served.client.post(f"/v1/jobs/{pending['sandbox-2']}/cancel")
        assert response.status_code == 200, response.text
        canceled = response.json()
        assert canceled["status"] == "canceled" and canceled["upstream"]["status"] == "CANCELED"
        key = served.sandbox.config.api_keys[1]
        async with httpx.AsyncClient(base_url=served.sandbox.public_url, timeout=10) as upstream:
            task = await upstream.get(
                f"/api/v1/tasks/{canceled['upstream']['task_id']}", headers={"Authorization": f"Bearer {key}"}
            )
        assert task.json()["output"]["task_status"] == "CANCELED"


async def test_a_refused_account_leaves_rotation_and_returns(tmp_path: Path, database_url: str) -> None:
    """Account 2's key revoked: its creates answer 401, so it leaves rotation (named by /readyz, which
    stays ready, and /metrics) and every job succeeds on account 1; restored, it is placed on again after
    the cool-down."""
    settings = make_settings(
        tmp_path,
        database_url,
        sandbox_account_count=2,
        upstream_max_inflight="wan2.6=1",  # one at a time per account: placement order shows
        upstream_account_retry_s=0.5,
        sandbox_pending_s=0.05,
        sandbox_running_s=0.3,
    )
    async with serve(settings) as served:
        gateway = served.gateway
        sandbox = served.sandbox
        key = sandbox.config.api_keys[0]
        png = data_uri(640, 360)

        async def set_revoked(revoked: bool) -> None:
            async with httpx.AsyncClient(base_url=sandbox.public_url, timeout=10) as upstream:
                answer = await upstream.post(
                    "/_sandbox/accounts",
                    json={"account": "2", "revoked": revoked},
                    headers={"Authorization": f"Bearer {key}"},
                )
            assert answer.status_code == 200, answer.text

        async def finish(ids: list[str]) -> list[tuple[str, str | None]]:
            async def done() -> list[dict[str, object]] | None:
                await gateway.poller.run_once()
                jobs = [await served.job(job_id) for job_id in ids]
                return jobs if all(j["status"] in ("succeeded", "failed") for j in jobs) else None

            jobs = await wait_for(done, within=60, what="the jobs to finish")
            assert [j["status"] for j in jobs] == ["succeeded"] * len(ids), [j.get("error") for j in jobs]
            async with gateway.sessions() as session:
                rows = (await session.execute(select(Job.id, Job.account).where(Job.id.in_(ids)))).all()
            return [(job_id, account) for job_id, account in rows]

        async def account_up(name: str) -> str:
            metrics = (await served.client.get("/metrics")).text
            line = next(
                x
                for x in metrics.splitlines()
                if x.startswith(f'wan_gateway_upstream_account_up{{account="{name}"}}')
            )
            return line.split()[-1]

        await set_revoked(True)
        first = await finish([await served.submit(png, prompt=f"revoked {i}") for i in range(4)])
        assert {account for _, account in first} == {"sandbox-1"}, first
        ready = await served.client.get("/readyz")
        assert ready.status_code == 200, ready.text  # one account left: still serving
        check = ready.json()["checks"]["upstream_accounts"]
        assert check.startswith("degraded") and "sandbox-2" in check and "401" in check, check
        assert await account_up("sandbox-2") == "0.0"
        assert await account_up("sandbox-1") == "1.0"

        await set_revoked(False)
        second = await finish([await served.submit(png, prompt=f"restored {i}") for i in range(6)])
        assert "sandbox-2" in {account for _, account in second}, second  # back in rotation
        ready = await served.client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["upstream_accounts"] == "ok", ready.text
        assert await account_up("sandbox-2") == "1.0"


async def test_each_job_is_billed_in_its_accounts_region(tmp_path: Path, database_url: str) -> None:
    """Two accounts in Singapore and Virginia (both USD; Virginia's wan2.6-i2v-flash priced by
    PRICE_TABLE_FILE, dearer): every job is estimated at the dearer price while queued, billed at its own
    account's once it succeeds, and /v1/usage adds the bills in the pool's one currency."""
    prices = tmp_path / "prices.toml"
    prices.write_text(
        'version = "us-1"\n[regions.us-east-1.models."wan2.6-i2v-flash"]\n'
        '"720P" = { audio = "0.07", silent = "0.02" }\n'
    )
    accounts = [
        {"name": "sg", "api_key": "sk-sandbox", "region": "ap-southeast-1"},
        {"name": "us", "api_key": "sk-sandbox-2", "region": "us-east-1"},
    ]
    settings = make_settings(
        tmp_path,
        database_url,
        sandbox_account_count=2,
        dashscope_accounts=json.dumps(accounts),  # the embedded sandbox's two keys, one region each
        price_table_file=prices,
        upstream_max_inflight="wan2.6=2",  # 4 jobs: two on each account
        sandbox_running_s=0.2,
    )
    async with serve(settings) as served:
        gateway = served.gateway
        assert gateway.accounts.names == ["sg", "us"]
        png = data_uri(640, 360)
        ids = [await served.submit(png, prompt=f"region {i}") for i in range(4)]
        for job_id in ids:
            cost = (await served.job(job_id))["cost"]
            assert cost["estimated"] and (cost["amount"], cost["unit_price"], cost["currency"]) == (
                "0.14",
                "0.07",
                "USD",
            ), cost

        async def all_done() -> list[dict[str, Any]] | None:
            await gateway.poller.run_once()
            jobs = [await served.job(job_id) for job_id in ids]
            return jobs if all(j["status"] in ("succeeded", "failed") for j in jobs) else None

        jobs = await wait_for(all_done, within=60, what="the four jobs to finish")
        async with gateway.sessions() as session:
            rows = (await session.execute(select(Job.id, Job.account).where(Job.id.in_(ids)))).all()
        bound = {job_id: str(account) for job_id, account in rows}
        assert sorted(bound.values()) == ["sg", "sg", "us", "us"], bound
        expected = {"sg": ("0.10", "0.05"), "us": ("0.14", "0.07")}
        for job in jobs:
            cost = job["cost"]
            assert job["status"] == "succeeded" and not cost["estimated"], job
            assert (cost["amount"], cost["unit_price"], cost["currency"]) == (
                *expected[bound[job["id"]]],
                "USD",
            )
            assert Decimal(cost["amount"]) <= Decimal("0.14")  # never above what was reserved
        usage = (await served.client.get("/v1/usage", params={"group_by": "model"})).json()
        assert [(r["amount"], r["currency"], r["jobs"]) for r in usage["data"]] == [("0.48", "USD", 4)], usage


async def test_a_refused_poll_takes_the_account_out_for_every_process(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gateways on one database and one upstream (A with the embedded sandbox, B an API replica
    pointed at it). A poll on account 2 refused in A takes the account out for B too: B's /readyz and
    /metrics name it and B's placement skips it; after the cool-down B's probe succeeds and A sees it
    back. Time is moved by the clock AccountHealth reads (no sleeps)."""
    shift = [0.0]
    monkeypatch.setattr(account_health, "wall_clock", lambda: time.time() + shift[0])
    common: dict[str, Any] = {"upstream_max_inflight": "wan2.6=2", "upstream_account_retry_s": 60}
    settings_a = make_settings(tmp_path, database_url, sandbox_account_count=2, **common)
    async with serve(settings_a) as a:
        sandbox = a.gateway.sandbox
        assert sandbox is not None
        keys = sandbox.config.api_keys
        pool = [
            {"name": f"sandbox-{n}", "api_key": key, "base_url": sandbox.base_url}
            for n, key in enumerate(keys, start=1)
        ]
        settings_b = make_settings(
            tmp_path / "b",
            database_url,
            dashscope_sandbox=False,
            dashscope_accounts=json.dumps(pool),
            auth_disabled=True,
            **common,
        )
        async with serve(settings_b) as b:
            png = data_uri(640, 360)

            async def revoke(revoked: bool) -> None:
                async with httpx.AsyncClient(base_url=sandbox.public_url, timeout=10) as upstream:
                    answer = await upstream.post(
                        "/_sandbox/accounts",
                        json={"account": "2", "revoked": revoked},
                        headers={"Authorization": f"Bearer {keys[0]}"},
                    )
                assert answer.status_code == 200, answer.text

            async def placed(ids: list[str]) -> dict[str, str | None]:
                async with a.gateway.sessions() as session:
                    query = select(Job.id, Job.account).where(Job.id.in_(ids), Job.task_id.is_not(None))
                    return {job_id: account for job_id, account in (await session.execute(query)).all()}

            async def account_up(served: Served) -> dict[str, str]:
                text = (await served.client.get("/metrics")).text
                prefix = "wan_gateway_upstream_account_up{account="
                return {
                    line.split('"')[1]: line.split()[-1]
                    for line in text.splitlines()
                    if line.startswith(prefix)
                }

            # Long tasks placed by A (cap 2 per account): account 1 full, account 2 with a slot free.
            x1, x2, y = [await a.submit(png, prompt=f"[sandbox:stuck] {name}") for name in ("x1", "x2", "y")]
            await a.gateway.poller.run_once()
            assert await placed([x1, x2, y]) == {x1: "sandbox-1", x2: "sandbox-1", y: "sandbox-2"}

            await revoke(True)

            async def b_sees_it_refused() -> str | None:
                await a.gateway.poller.run_once()  # A polls y on account 2: 401
                check = (await b.client.get("/readyz")).json()["checks"]["upstream_accounts"]
                return check if check.startswith("degraded") else None

            check = await wait_for(b_sees_it_refused, within=20, what="B to see account 2 refused")
            assert "sandbox-2" in check and "401" in check, check
            assert await account_up(b) == {"sandbox-1": "1.0", "sandbox-2": "0.0"}
            assert (await b.client.get("/readyz")).status_code == 200  # one account left: still ready
            # B's own placement skips account 2's free slot although B never called it.
            z = await b.submit(png, prompt="[sandbox:stuck] z")
            await b.gateway.poller.run_once()
            job = await b.job(z)
            assert job["status"] == "queued" and await placed([z]) == {}, job

            await revoke(False)
            shift[0] += 61  # the cool-down is over: B places one job on it, the probe

            async def probed() -> dict[str, str | None] | None:
                await b.gateway.poller.run_once()
                return await placed([z]) or None

            assert await wait_for(probed, within=20, what="B's probe on account 2") == {z: "sandbox-2"}
            ready = await a.client.get("/readyz")
            assert ready.json()["checks"]["upstream_accounts"] == "ok", ready.text
            assert await account_up(a) == {"sandbox-1": "1.0", "sandbox-2": "1.0"}
