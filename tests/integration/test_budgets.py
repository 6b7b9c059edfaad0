"""Budgets (money per key and period): the estimate is reserved at submit, settled to what was billed or
released to 0 by the job's terminal write, once; a submission that does not fit is a 402 on every
surface. The sandbox bills as Beijing (CNY): a 5 s 720P wan2.6-i2v-flash job with sound is 1.50."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.cli import main as cli_main
from app.jobs.models import Job
from app.jobs.states import InvalidTransition, JobStatus
from app.tenants.quotas import period_bounds
from tests.conftest import Served, make_settings, serve
from tests.helpers import data_uri, run_cli

ALICE = "alice-key-" + "a" * 32
FLASH = {"model": "wan2.6-i2v-flash", "duration": 5, "size": "1280*720", "audio": True}


async def post(served: Served, key: str, seed: int, prompt: str = "a cat") -> Any:
    body = {"prompt": prompt, "reference_image": data_uri(), "seed": seed, **FLASH}
    return await served.client.post("/v1/jobs", json=body, headers={"Authorization": f"Bearer {key}"})


async def accepted(served: Served, key: str, seed: int, prompt: str = "a cat") -> str:
    response = await post(served, key, seed, prompt)
    assert response.status_code == 202, response.text
    assert response.json()["cost"]["amount"] == "1.50" and response.json()["cost"]["estimated"] is True
    job_id: str = response.json()["id"]
    return job_id


async def refused(served: Served, key: str, seed: int) -> dict[str, Any]:
    response = await post(served, key, seed)
    assert response.status_code == 402, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == "budget_exceeded" and body["currency"] == "CNY" and body["estimate"] == "1.50"
    return body


def iso(when: datetime | None) -> str:
    assert when is not None
    return when.isoformat().replace("+00:00", "Z")


async def spent_micros(served: Served, owner: str) -> int:
    async with served.gateway.sessions() as session:
        finished = Job.status.in_([s for s in JobStatus if s.terminal])
        total = await session.scalar(select(func.sum(Job.cost_micros)).where(Job.owner == owner, finished))
        return int(total or 0)


async def test_a_budget_reserves_estimates_settles_once_and_frees_with_the_period(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    # The CLI sets a key's own budget (3 CNY a day); configured keys get QUOTA_BUDGET (1.50 a month).
    carol = (
        await asyncio.to_thread(
            run_cli, "keys", "create", "carol", "--budget", "3", "--budget-period", "day", env=env
        )
    ).strip()
    settings = make_settings(
        tmp_path,
        database_url,
        gateway_api_keys=f"alice:{ALICE}",
        quota_budget=Decimal("1.5"),
        quota_budget_period="month",
    )
    async with serve(settings) as served:
        failing = await accepted(served, carol, 1, "a cat [sandbox:FAILED]")
        succeeding = await accepted(served, carol, 2)
        third = await refused(served, carol, 3)
        assert (third["limit"], third["spent"], third["reserved"], third["period"]) == (
            "3.00",
            "0.00",
            "3.00",
            "day",
        )
        assert third["resets_at"] == iso(period_bounds("day", datetime.now(UTC))[1])
        assert "daily budget of 3.00 CNY" in third["detail"]

        # The other surfaces say it in their own words.
        dashscope = await served.client.post(
            "/api/v1/services/aigc/video-generation/video-synthesis",
            json={
                "model": "wan2.6-i2v-flash",
                "input": {"prompt": "a cat", "img_url": data_uri()},
                "parameters": {"resolution": "720P", "duration": 5, "audio": True},
            },
            headers={"Authorization": f"Bearer {carol}", "X-DashScope-Async": "enable"},
        )
        assert dashscope.status_code == 402 and dashscope.json()["code"] == "Arrearage", dashscope.text
        assert "budget" in dashscope.json()["message"]
        openai = await served.client.post(
            "/v1/videos",
            json={
                "prompt": "a cat",
                "seconds": "5",
                "size": "1280x720",
                "input_reference": {"image_url": data_uri()},
            },
            headers={"Authorization": f"Bearer {carol}"},
        )
        assert openai.status_code == 402 and openai.json()["error"]["code"] == "budget_exceeded", openai.text

        # A configured key has the default budget: one 1.50 job a month.
        await accepted(served, ALICE, 10)
        monthly = await refused(served, ALICE, 11)
        assert (monthly["limit"], monthly["reserved"], monthly["period"]) == ("1.50", "1.50", "month")
        assert monthly["resets_at"] == iso(period_bounds("month", datetime.now(UTC))[1])

        # A failure releases its reservation (DashScope bills only success): one more fits.
        served.headers = {"Authorization": f"Bearer {carol}"}
        assert (await served.drive(failing, "failed", "succeeded"))["status"] == "failed"
        fourth = await accepted(served, carol, 4, "a cat [sandbox:stuck]")  # stays reserved

        # Success settles to what was billed: it stays spent.
        done = await served.drive(succeeding, "succeeded", "failed")
        assert done["status"] == "succeeded" and done["cost"]["amount"] == "1.50"
        assert done["cost"]["estimated"] is False
        fifth = await refused(served, carol, 5)
        assert (fifth["spent"], fifth["reserved"]) == ("1.50", "1.50")

        # Nothing is settled twice: the poller runs again, and another replica's late terminal write for
        # the same job (a compare-and-set on the version it read: it would release the 1.50) is refused.
        spent = await spent_micros(served, "carol")
        assert spent == 1_500_000
        await served.gateway.poller.run_once()
        transitions = served.gateway.service._transitions
        async with served.gateway.sessions.begin() as session:
            ended = await session.get(Job, succeeding)
            assert ended is not None and ended.status == JobStatus.SUCCEEDED
            with pytest.raises(InvalidTransition):  # an ended job never moves again
                await transitions.write(session, ended, status=JobStatus.FAILED)
            session.expunge(ended)
            # As a replica saw it before its end (one version earlier), writing it failed at its deadline.
            ended.status, ended.version = JobStatus.RUNNING, ended.version - 1
            late = await transitions.write(
                session, ended, status=JobStatus.FAILED, finished_at=datetime.now(UTC)
            )
        assert late is None
        assert await spent_micros(served, "carol") == spent
        assert (await served.job(succeeding))["cost"]["amount"] == "1.50"

        # A new day: what finished yesterday no longer counts against a daily budget.
        async with served.gateway.sessions.begin() as session:
            await session.execute(
                update(Job)
                .where(Job.id == succeeding)
                .values(finished_at=datetime.now(UTC) - timedelta(days=1))
            )
        sixth = await accepted(served, carol, 6, "a cat [sandbox:stuck]")
        assert (await refused(served, carol, 7))["spent"] == "0.00"
        assert {fourth, sixth} <= {
            j["id"] for j in (await served.client.get("/v1/jobs", headers=served.headers)).json()["data"]
        }

    # `keys list` shows each key's budget, its own or the default.
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_API_KEYS", f"alice:{ALICE}")
    monkeypatch.setenv("QUOTA_BUDGET", "1.5")
    await asyncio.to_thread(cli_main, ["keys", "list"])
    listing = capsys.readouterr().out
    assert "3.00 CNY/day" in listing and "1.50 CNY/month (default)" in listing
