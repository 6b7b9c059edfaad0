"""`GET /v1/usage`, the spend counters of `/metrics` and `wan-gateway usage`: billed amounts summed per
model, day, key and tenant (a failed or canceled job counted with 0), scoped to the caller's tenant (an
admin sees every tenant), bad parameters a 422 naming the field."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest
from sqlalchemy import update

from app.client import usage as usage_cli
from app.db.base import utcnow
from app.jobs.models import Job
from app.tenants import keys
from tests.conftest import Served, serve
from tests.integration.test_cost import FLASH
from tests.integration.test_tenants import ALICE, BOB, OPS, as_, keyed

FLASH_ROW = {"group": "wan2.6-i2v-flash", "billed_seconds": 5, "currency": "CNY"}


async def finish(served: Served, key: str, png_uri: str, status: str, **fields: object) -> None:
    body = {"prompt": "a cat", "reference_image": png_uri, **FLASH, **fields}
    response = await served.client.post("/v1/jobs", json=body, headers=as_(key))
    assert response.status_code == 202, response.text
    served.headers = as_(key)
    done = await served.drive(response.json()["id"], "succeeded", "failed")
    assert done["status"] == status, done.get("error")


async def test_usage_sums_billed_jobs_per_group_scoped_to_the_tenant(
    tmp_path: Path, database_url: str, png_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serve(keyed(tmp_path, database_url)) as served:
        await finish(served, ALICE, png_uri, "succeeded")
        await finish(served, ALICE, png_uri, "failed", prompt="a cat [sandbox:FAILED]", seed=8)
        await finish(served, BOB, png_uri, "succeeded")

        async def usage(key: str, **params: str) -> list[dict[str, object]]:
            response = await served.client.get("/v1/usage", params=params, headers=as_(key))
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["object"] == "usage" and body["group_by"] == params.get("group_by", "day")
            rows: list[dict[str, object]] = body["data"]
            return rows

        alice = {**FLASH_ROW, "jobs": 2, "amount": "1.50"}
        assert await usage(ALICE, group_by="model") == [alice]
        today = utcnow().date().isoformat()
        assert await usage(ALICE) == [{**alice, "group": today}]
        assert await usage(ALICE, group_by="tenant") == [{**alice, "group": "alice"}]  # scoped
        assert await usage(BOB, group_by="model") == [{**FLASH_ROW, "jobs": 1, "amount": "1.50"}]
        assert await usage(OPS, group_by="tenant") == [
            {**alice, "group": "alice"},
            {**FLASH_ROW, "jobs": 1, "amount": "1.50", "group": "bob"},
        ]
        assert await usage(OPS, group_by="model") == [
            {**FLASH_ROW, "jobs": 3, "billed_seconds": 10, "amount": "3.00"}
        ]
        assert await usage(ALICE, to="2000-01-01", **{"from": "1999-01-01"}) == []  # the window

        for params, field in [
            ({"from": "yesterday"}, "from"),
            ({"to": "2026-13-01"}, "to"),
            ({"from": "2026-12-02", "to": "2026-12-01T23:00:00Z"}, "from"),
            ({"group_by": "week"}, "group_by"),
        ]:
            response = await served.client.get("/v1/usage", params=params, headers=as_(ALICE))
            assert response.status_code == 422, (params, response.text)
            assert response.json()["field"].endswith(field), (params, response.json())

        metrics = (await served.client.get("/metrics", headers=as_(OPS))).text
        for line in [
            'wan_gateway_spend_total{currency="CNY",model="wan2.6-i2v-flash",tenant="alice"} 1.5',
            'wan_gateway_spend_total{currency="CNY",model="wan2.6-i2v-flash",tenant="bob"} 1.5',
            'wan_gateway_billed_seconds_total{model="wan2.6-i2v-flash",tenant="alice"} 5.0',
        ]:
            assert line in metrics.splitlines(), metrics

        # The CLI, in-process (in a thread: it is a blocking client of this loop's server).
        args = argparse.Namespace(
            since=None, until=None, group_by="model", url=served.url, key=ALICE, json=False
        )
        assert await asyncio.to_thread(usage_cli.run, args) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1].split() == ["group", "jobs", "billed_seconds", "amount", "currency"]
        assert out[2].split() == ["wan2.6-i2v-flash", "2", "5", "1.50", "CNY"]
        args.group_by = "week"
        assert await asyncio.to_thread(usage_cli.run, args) == 3
        assert "422" in capsys.readouterr().err

        # group_by=key: a second key of alice's, through the DashScope facade and the OpenAI projection.
        async with served.gateway.sessions.begin() as session:
            _, ci = await keys.create(session, "alice-ci", tenant="alice")
        facade = await served.client.post(
            "/api/v1/services/aigc/video-generation/video-synthesis",
            json={
                "model": "wan2.6-i2v-flash",
                "input": {"prompt": "a dog", "img_url": png_uri},
                "parameters": {"resolution": "720P", "duration": 5, "audio": True},
            },
            headers={**as_(ci), "X-DashScope-Async": "enable"},
        )
        assert facade.status_code == 200, facade.text
        served.headers = as_(ci)
        facade_id = facade.json()["output"]["task_id"]
        assert (await served.drive(facade_id, "succeeded", "failed"))["status"] == "succeeded"
        openai = await served.client.post(
            "/v1/videos",
            json={
                "prompt": "a dog",
                "seconds": "5",
                "size": "1280x720",
                "input_reference": {"image_url": png_uri},
            },
            headers=as_(ci),
        )
        assert openai.status_code in (200, 201), openai.text
        canceled = await served.client.post(f"/v1/jobs/{openai.json()['id']}/cancel", headers=as_(ci))
        assert canceled.json()["status"] == "canceled", canceled.text
        ci_row = {**FLASH_ROW, "jobs": 2, "amount": "1.50", "group": "alice-ci"}
        assert await usage(ALICE, group_by="key") == [{**alice, "group": "alice"}, ci_row]
        assert await usage(ci, group_by="key") == [{**alice, "group": "alice"}, ci_row]  # the tenant's
        # A job from before jobs recorded their key: the group null.
        async with served.gateway.sessions.begin() as session:
            await session.execute(update(Job).where(Job.owner == "bob").values(api_key=None))
        assert await usage(OPS, group_by="key") == [
            {**FLASH_ROW, "jobs": 1, "amount": "1.50", "group": None},
            {**alice, "group": "alice"},
            ci_row,
        ]
