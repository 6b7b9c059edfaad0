"""`job.cost` over the whole data path (the sandbox bills as Beijing): estimated at submit, billed from the
task's usage at success and shown the same by GET, the list and the events; 0 for a reused video and a
failed task; PRICE_TABLE_FILE read at start, a bad one refusing the start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.billing.table import PriceTableError
from app.lifespan import open_gateway
from tests.conftest import Served, make_settings, serve

FLASH = {"model": "wan2.6-i2v-flash", "duration": 5, "size": "1280*720", "audio": True, "seed": 7}
BILLED = {
    "amount": "1.50",
    "currency": "CNY",
    "billed_seconds": 5,
    "unit_price": "0.30",
    "price_version": "2026-12-01",
    "estimated": False,
}
FREE = {**BILLED, "amount": "0", "billed_seconds": 0}


async def create(served: Served, png_uri: str, **fields: Any) -> dict[str, Any]:
    body = {"prompt": "a cat", "reference_image": png_uri, **FLASH, **fields}
    response = await served.client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def test_a_job_is_estimated_then_billed_and_reuse_and_failure_cost_nothing(
    gateway: Served, png_uri: str
) -> None:
    job = await create(gateway, png_uri)
    assert job["cost"] == {**BILLED, "estimated": True}
    follower = await create(gateway, png_uri)  # identical, while the first runs: it follows it
    assert follower["source_job_id"] == job["id"] and follower["cost"] == FREE

    done = await gateway.drive(job["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done.get("error")
    followed = await gateway.job(follower["id"])
    assert followed["status"] == "succeeded" and followed["cost"] == FREE
    assert done["usage"]["duration"] == 5 and done["usage"]["audio"] is True
    assert done["cost"] == BILLED
    listed = (await gateway.client.get("/v1/jobs")).json()["data"]
    assert [item["cost"] for item in listed if item["id"] == job["id"]] == [BILLED]
    events = await gateway.gateway.service.events_after(job["id"], 0)
    assert [event.data["cost"]["estimated"] for event in events] == [True] * (len(events) - 1) + [False]
    assert events[-1].type == "job.succeeded" and events[-1].data["cost"] == BILLED  # webhooks send this

    reused = await create(gateway, png_uri)
    assert reused["cached"] is True and reused["cost"] == FREE

    failed = await create(gateway, png_uri, prompt="a cat [sandbox:FAILED]", seed=8)
    assert failed["cost"]["estimated"] is True
    ended = await gateway.drive(failed["id"], "failed", "succeeded")
    assert ended["status"] == "failed" and ended["cost"] == FREE

    queued = await create(gateway, png_uri, seed=9)
    canceled = (await gateway.client.post(f"/v1/jobs/{queued['id']}/cancel")).json()
    assert canceled["status"] == "canceled" and canceled["cost"] == FREE


async def test_price_table_file_prices_at_start_and_a_bad_one_stops_it(
    tmp_path: Path, database_url: str, png_uri: str
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('version = "team-2"\n[regions.cn-beijing.models."wan2.6-i2v-flash"]\n"720P" = "0.2"\n')
    async with serve(make_settings(tmp_path, database_url, price_table_file=prices)) as served:
        job = await create(served, png_uri)
        assert job["cost"] == {
            **BILLED,
            "amount": "1.0",
            "unit_price": "0.2",
            "price_version": "2026-12-01+team-2",
            "estimated": True,
        }
    prices.write_text('version = "team-3"\n[regions.cn-beijing.models."wan2.6-i2v-flash"]\n"720P" = 0.2\n')
    with pytest.raises(PriceTableError, match=r'"wan2.6-i2v-flash"\."720P": a price is a decimal string'):
        async with open_gateway(make_settings(tmp_path, database_url, price_table_file=prices)):
            pass
