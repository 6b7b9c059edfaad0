"""Client keys and tenants: every /v1 route needs a key once keys exist, and a tenant sees only its jobs."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.config import Settings
from app.main import create_app
from app.tenants.keys import generate_key
from tests.conftest import Served, make_settings, serve
from tests.helpers import data_uri, run_cli

ALICE = "alice-key-" + "a" * 32
BOB = "bob-key-" + "b" * 32
OPS = "ops-key-" + "o" * 32


def keyed(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        gateway_api_keys=f"alice:{ALICE},bob:{BOB}",
        gateway_admin_keys=f"ops:{OPS}",
        **overrides,
    )


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def submit(served: Served, key: str, **fields: object) -> str:
    body = {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": data_uri(), **fields}
    response = await served.client.post("/v1/jobs", json=body, headers=as_(key))
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def test_two_tenants_see_only_their_own_jobs(tmp_path: Path, database_url: str) -> None:
    async with serve(keyed(tmp_path, database_url, allow_private_urls=True)) as served:
        c = served.client
        mine = await submit(served, ALICE, webhook_url="http://127.0.0.1:9/hook")
        served.headers = as_(ALICE)
        await served.drive(mine, "succeeded")
        theirs = await submit(served, BOB)

        listed = (await c.get("/v1/jobs", headers=as_(ALICE))).json()["data"]
        assert [j["id"] for j in listed] == [mine]
        assert [j["id"] for j in (await c.get("/v1/jobs", headers=as_(BOB))).json()["data"]] == [theirs]
        assert (await c.get(f"/v1/jobs/{mine}", headers=as_(ALICE))).status_code == 200
        assert (await c.get(f"/v1/jobs/{mine}/content", headers=as_(ALICE))).status_code == 200
        deliveries = (await c.get(f"/v1/jobs/{mine}/deliveries", headers=as_(ALICE))).json()["data"]
        assert deliveries

        # Everywhere, another tenant's job does not exist.
        for method, path in (
            ("GET", f"/v1/jobs/{mine}"),
            ("GET", f"/v1/jobs/{mine}/content"),
            ("GET", f"/v1/jobs/{mine}/events"),
            ("GET", f"/v1/jobs/{mine}/deliveries"),
            ("POST", f"/v1/jobs/{mine}/deliveries/{deliveries[0]['id']}/redeliver"),
            ("POST", f"/v1/jobs/{mine}/cancel"),
        ):
            response = await c.request(method, path, headers=as_(BOB))
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["code"] == "not_found"
        # Bob's cancel did nothing to Alice's job; Bob can cancel his own.
        assert (await c.post(f"/v1/jobs/{theirs}/cancel", headers=as_(BOB))).json()["status"] == "canceled"
        assert (await c.get(f"/v1/jobs/{mine}", headers=as_(ALICE))).json()["status"] == "succeeded"

        # An admin key (the operator, the console's admin view) sees and reads every tenant's jobs, each
        # naming its tenant; a job it submits is its own tenant's. The drop-in surfaces stay per tenant.
        own = await submit(served, OPS, prompt="ops job")
        listed = (await c.get("/v1/jobs", headers=as_(OPS))).json()["data"]
        assert [(j["id"], j["tenant"]) for j in listed] == [(own, "ops"), (theirs, "bob"), (mine, "alice")]
        for path in (f"/v1/jobs/{mine}", f"/v1/jobs/{mine}/content", f"/v1/jobs/{mine}/deliveries"):
            assert (await c.get(path, headers=as_(OPS))).status_code == 200, path
        assert (await c.get(f"/v1/jobs/{own}", headers=as_(ALICE))).status_code == 404
        assert (await c.get(f"/v1/videos/{mine}", headers=as_(OPS))).status_code == 404
        assert (await c.post(f"/v1/jobs/{own}/cancel", headers=as_(OPS))).json()["status"] == "canceled"


async def test_requests_without_a_valid_key_are_refused(tmp_path: Path, database_url: str) -> None:
    async with serve(keyed(tmp_path, database_url)) as served:
        c = served.client
        for headers in ({}, as_("not-a-key"), {"Authorization": f"Basic {ALICE}"}):
            for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/job_x")):
                response = await c.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (headers, path)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.json()["code"] in ("missing_api_key", "invalid_api_key")
        # Nothing was stored on the way.
        assert (await c.get("/v1/jobs", headers=as_(ALICE))).json()["data"] == []
        # Liveness and readiness stay open to probes.
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/readyz")).status_code == 200


async def test_the_key_is_checked_before_the_body_is_read(tmp_path: Path, database_url: str) -> None:
    """Without a valid key nothing of the body is read: not parsed (401, not the 400 of bad JSON), and a
    declared 30 MB body is answered without waiting for it."""
    async with serve(keyed(tmp_path, database_url)) as served:
        json_type = {"content-type": "application/json"}
        for headers, code in (({}, "missing_api_key"), (as_("not-a-key"), "invalid_api_key")):
            response = await served.client.post(
                "/v1/jobs", content=b'{"prompt": ', headers={**json_type, **headers}
            )
            assert response.status_code == 401 and response.json()["code"] == code, response.text
            assert response.headers["www-authenticate"].startswith("Bearer")
        response = await served.client.post(
            "/v1/jobs", content=b'{"prompt": ', headers={**json_type, **as_(ALICE)}
        )
        assert response.status_code == 400 and response.json()["code"] == "invalid_json"

        url = httpx.URL(served.url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            writer.write(
                b"POST /v1/jobs HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                b"Content-Length: 30000000\r\n\r\n"
            )  # and not one byte of the body: only an answer that did not wait for it can arrive
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        finally:
            writer.close()
            await writer.wait_closed()
        assert head.startswith(b"HTTP/1.1 401 "), head
        assert b"\r\nwww-authenticate: bearer" in head.lower()


async def test_metrics_and_stats_need_an_admin_key(tmp_path: Path, database_url: str) -> None:
    async with serve(keyed(tmp_path, database_url)) as served:
        c = served.client
        for path in ("/metrics", "/v1/admin/stats"):
            assert (await c.get(path)).status_code == 401
            forbidden = await c.get(path, headers=as_(ALICE))
            assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
            assert (await c.get(path, headers=as_(OPS))).status_code == 200


async def test_keys_created_with_the_cli_work_until_revoked(tmp_path: Path, database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}

    def cli(*args: str) -> str:
        return run_cli("keys", *args, env=env)

    async with serve(make_settings(tmp_path, database_url, auth_cache_ttl_s=0)) as served:
        c = served.client
        # No key anywhere: sandbox mode serves anyone.
        assert (await c.get("/v1/jobs")).status_code == 200
        key = cli("create", "carol", "--submits-per-minute", "5").strip()
        assert key.startswith("wg_") and len(key) >= 43
        # The first key turns authentication on.
        assert (await c.get("/v1/jobs")).status_code == 401
        job_id = await submit(served, key)
        assert (await c.get(f"/v1/jobs/{job_id}", headers=as_(key))).status_code == 200
        listing = cli("list")
        assert "carol" in listing and key not in listing and key[:7] in listing
        cli("revoke", "carol")
        assert (await c.get(f"/v1/jobs/{job_id}", headers=as_(key))).status_code == 401
        assert "carol" not in cli("list") and "revoked" in cli("list", "--all")


async def test_only_hashes_of_created_keys_are_stored(tmp_path: Path, database_url: str) -> None:
    from app.tenants import keys as repo

    async with serve(make_settings(tmp_path, database_url)) as served:
        async with served.gateway.sessions.begin() as session:
            row, key = await repo.create(session, "dave")
        assert row.key_hash != key and key not in (row.prefix, row.key_hash)
        assert len(key) - len("wg_") >= 43  # 32 random bytes, base64url
        assert generate_key() != generate_key()


async def test_real_upstream_without_client_keys_refuses_to_start(tmp_path: Path, database_url: str) -> None:
    upstream = {"dashscope_sandbox": False, "dashscope_api_key": "sk-" + "r" * 32}

    def app_with(**overrides: object) -> FastAPI:
        return create_app(make_settings(tmp_path, database_url, **upstream, **overrides))

    refused = app_with()
    with pytest.raises(RuntimeError, match="GATEWAY_API_KEYS"):
        async with refused.router.lifespan_context(refused):
            pass
    for allowed in (app_with(auth_disabled=True), app_with(gateway_api_keys=f"alice:{ALICE}")):
        async with allowed.router.lifespan_context(allowed):
            assert await allowed.state.gateway.auth.enabled() is not allowed.state.settings.auth_disabled


def test_short_configured_keys_are_refused_without_echoing_them() -> None:
    from app.lifespan import configured_keys

    settings = Settings(_env_file=None, gateway_api_keys=SecretStr("alice:short-secret-value"))
    with pytest.raises(ValueError, match="at least 32") as caught:
        configured_keys(settings)
    assert "short-secret-value" not in str(caught.value)


async def test_secrets_never_reach_logs_or_responses(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    webhook_secret = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    image = data_uri()
    caplog.set_level(logging.DEBUG)
    settings = keyed(tmp_path, database_url, webhook_secret=webhook_secret, allow_private_urls=True)
    async with serve(settings) as served:
        c = served.client
        served.headers = as_(ALICE)
        job_id = await submit(served, ALICE, webhook_url="http://127.0.0.1:9/hook")
        await served.pump_until(lambda: True)
        await served.drive(job_id, "succeeded")
        failing = await submit(served, ALICE, prompt="a cat [sandbox:FAILED/DataInspectionFailed]")
        await served.drive(failing, "failed")
        responses = [
            await c.get(f"/v1/jobs/{job_id}", headers=as_(ALICE)),
            await c.get("/v1/jobs", headers=as_(ALICE)),
            await c.get(f"/v1/jobs/{job_id}/deliveries", headers=as_(ALICE)),
            await c.post("/v1/jobs", json={"reference_image": image, "size": "x"}, headers=as_(ALICE)),
            await c.get("/v1/jobs", headers=as_(ALICE[:-1] + "z")),
            await c.get("/v1/admin/stats", headers=as_(OPS)),
        ]
        # A secret logged by any module is redacted on the way out.
        logging.getLogger("tests.leak").warning("sent %s with %s", ALICE, image)
    payload = image.split(",", 1)[1]
    texts = [caplog.text, *(r.text + str(r.headers) for r in responses)]
    for text in texts:
        for secret in (ALICE, BOB, OPS, webhook_secret, payload[:200]):  # (sk-sandbox is public)
            assert secret not in text
    assert "<" in caplog.text and "chars>" in caplog.text  # the data: URI was shortened, not dropped


async def test_quota_per_minute_answers_429_with_retry_after(tmp_path: Path, database_url: str) -> None:
    async with serve(keyed(tmp_path, database_url, quota_submits_per_minute=2)) as served:
        body = {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": data_uri()}
        first = await served.client.post("/v1/jobs", json=body, headers=as_(ALICE))
        assert first.status_code == 202
        assert first.headers["RateLimit-Limit"] == "2" and first.headers["RateLimit-Remaining"] == "1"
        assert (await served.client.post("/v1/jobs", json=body, headers=as_(ALICE))).status_code == 202
        refused = await served.client.post("/v1/jobs", json=body, headers=as_(ALICE))
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "quota_exceeded" and refused.json()["quota"] == "submits_per_minute"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["RateLimit-Remaining"] == "0"
        # Another key has its own budget; the refused request stored nothing.
        assert (await served.client.post("/v1/jobs", json=body, headers=as_(BOB))).status_code == 202
        assert len((await served.client.get("/v1/jobs", headers=as_(ALICE))).json()["data"]) == 2


async def test_quota_on_jobs_not_yet_finished(tmp_path: Path, database_url: str) -> None:
    async with serve(keyed(tmp_path, database_url, quota_max_active_jobs=1)) as served:
        served.headers = as_(ALICE)
        first = await submit(served, ALICE)
        body = {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": data_uri()}
        refused = await served.client.post("/v1/jobs", json=body, headers=as_(ALICE))
        assert refused.status_code == 429 and refused.json()["quota"] == "max_active_jobs"
        assert "Retry-After" in refused.headers
        await served.drive(first, "succeeded")
        assert (await served.client.post("/v1/jobs", json=body, headers=as_(ALICE))).status_code == 202


async def test_quota_on_video_seconds_per_day(tmp_path: Path, database_url: str) -> None:
    async with serve(keyed(tmp_path, database_url, quota_video_seconds_per_day=5)) as served:
        await submit(served, ALICE, duration=2)
        canceled = await submit(served, ALICE, duration=2)
        # A canceled job costs nothing, so it gives its seconds back.
        cancel = await served.client.post(f"/v1/jobs/{canceled}/cancel", headers=as_(ALICE))
        assert cancel.status_code == 200
        await submit(served, ALICE, duration=2)
        body = {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": data_uri()}
        refused = await served.client.post("/v1/jobs", json=body, headers=as_(ALICE))
        assert refused.status_code == 429 and refused.json()["quota"] == "video_seconds_per_day"
        assert 80_000 < int(refused.headers["Retry-After"]) <= 86_400


async def test_concurrent_submissions_cannot_slip_past_a_quota(tmp_path: Path, database_url: str) -> None:
    async with serve(keyed(tmp_path, database_url, quota_submits_per_minute=3)) as served:
        body = {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": data_uri()}

        async def post() -> httpx.Response:
            return await served.client.post("/v1/jobs", json=body, headers=as_(ALICE))

        codes = sorted(r.status_code for r in await asyncio.gather(*(post() for _ in range(8))))
        assert codes == [202] * 3 + [429] * 5


async def test_a_flood_of_duplicates_with_one_key_makes_one_job_and_spends_one_quota_slot(
    tmp_path: Path, database_url: str
) -> None:
    async with serve(keyed(tmp_path, database_url, quota_submits_per_minute=2)) as served:
        served.headers = as_(ALICE)
        body = {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": data_uri()}
        headers = {**as_(ALICE), "Idempotency-Key": "nightly-batch-0001"}

        async def post() -> httpx.Response:
            return await served.client.post("/v1/jobs", json=body, headers=headers)

        answers = await asyncio.gather(*(post() for _ in range(20)))
        assert {a.status_code for a in answers} <= {202, 409}, [a.text for a in answers]
        ids = {a.json()["id"] for a in answers if a.status_code == 202}
        assert len(ids) == 1
        await served.drive(ids.pop(), "succeeded")
        assert served.sandbox.stats.created_total == 1
        # Bob's identical key is his own; Alice has one submission of her two left this minute.
        bob = await served.client.post("/v1/jobs", json=body, headers={**headers, **as_(BOB)})
        assert bob.status_code == 202 and "Idempotent-Replayed" not in bob.headers
        assert (await served.client.post("/v1/jobs", json=body, headers=as_(ALICE))).status_code == 202
        assert (await served.client.post("/v1/jobs", json=body, headers=as_(ALICE))).status_code == 429


async def test_a_reused_video_costs_no_video_seconds(tmp_path: Path, database_url: str) -> None:
    async with serve(keyed(tmp_path, database_url, quota_video_seconds_per_day=3)) as served:
        served.headers = as_(ALICE)
        seeded = {
            "prompt": "a cat",
            "duration": 2,
            "size": "1280*720",
            "seed": 7,
            "reference_image": data_uri(),
        }
        first = (await served.client.post("/v1/jobs", json=seeded, headers=as_(ALICE))).json()["id"]
        await served.drive(first, "succeeded")
        for _ in range(3):  # 3 × 2 s more than the budget, yet free: the video exists already
            again = await served.client.post("/v1/jobs", json=seeded, headers=as_(ALICE))
            assert again.status_code == 202 and again.json()["cached"] is True, again.text
        other = await served.client.post("/v1/jobs", json={**seeded, "seed": 8}, headers=as_(ALICE))
        assert other.status_code == 429 and other.json()["quota"] == "video_seconds_per_day"
        assert served.sandbox.stats.created_total == 1
