"""`Idempotency-Key`: a replay returns the same job and creates nothing; keys are per tenant, checked
against the body, not used up by failed requests, and free again once expired or abandoned."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from app.db.base import utcnow
from app.jobs.fingerprint import request_fingerprint
from app.jobs.models import IdempotencyKey, Job
from app.jobs.schemas import JobCreate
from tests.conftest import Served


def body(png_uri: str, **fields: Any) -> dict[str, Any]:
    return {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": png_uri, **fields}


async def post(served: Served, payload: dict[str, Any] | str, key: str | None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    if isinstance(payload, str):
        headers["Content-Type"] = "application/json"
        return await served.client.post("/v1/jobs", content=payload, headers=headers)
    return await served.client.post("/v1/jobs", json=payload, headers=headers)


async def job_count(served: Served) -> int:
    async with served.gateway.sessions() as session:
        return len((await session.scalars(select(Job.id))).all())


async def test_same_key_and_body_replay_the_job_and_create_nothing(gateway: Served, png_uri: str) -> None:
    first = await post(gateway, body(png_uri, metadata={"a": 1, "b": [1, 2]}), "order-42")
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    job_id = first.json()["id"]

    # The same request, serialized differently: other key order, whitespace, an explicit null.
    same = dict(reversed(list(body(png_uri, metadata={"b": [1, 2], "a": 1}).items())))
    raw = json.dumps({**same, "negative_prompt": None}, indent=3)
    again = await post(gateway, raw, "order-42")
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"] == f"/v1/jobs/{job_id}"
    assert again.json()["id"] == job_id

    await gateway.drive(job_id, "succeeded")
    late = await post(gateway, body(png_uri, metadata={"a": 1, "b": [1, 2]}), "order-42")
    assert late.status_code == 202 and late.headers["Idempotent-Replayed"] == "true"
    assert late.json()["id"] == job_id and late.json()["status"] == "succeeded"
    assert gateway.sandbox.stats.created_total == 1
    assert await job_count(gateway) == 1

    async with gateway.gateway.sessions() as session:
        row = (await session.scalars(select(IdempotencyKey))).one()
    assert row.tenant == "" and row.job_id == job_id
    assert row.expires_at - row.created_at == timedelta(seconds=86400)  # IDEMPOTENCY_TTL_S


async def test_same_key_with_another_body_is_refused(gateway: Served, png_uri: str) -> None:
    assert (await post(gateway, body(png_uri), "k1")).status_code == 202
    other = await post(gateway, body(png_uri, prompt="a dog"), "k1")
    assert other.status_code == 422
    problem = other.json()
    assert problem["code"] == "idempotency_key_reused" and problem["field"] == "Idempotency-Key"
    assert await job_count(gateway) == 1


async def test_a_rejected_request_does_not_use_the_key(gateway: Served, png_uri: str) -> None:
    # Refused by the model's rules (after the key was reserved) and by the schema (before).
    near_no_tier = await post(gateway, body(png_uri, size="100*100"), "k2")
    assert near_no_tier.status_code == 422 and near_no_tier.json()["field"] == "size"
    not_a_size = await post(gateway, body(png_uri, size="big"), "k2")
    assert not_a_size.status_code == 422 and not_a_size.json()["field"] == "size"
    valid = await post(gateway, body(png_uri), "k2")
    assert valid.status_code == 202, valid.text
    assert "Idempotent-Replayed" not in valid.headers
    assert await job_count(gateway) == 1


async def test_twenty_concurrent_duplicates_make_one_job_and_one_task(gateway: Served, png_uri: str) -> None:
    payload = body(png_uri)
    answers = await asyncio.gather(*(post(gateway, payload, "burst") for _ in range(20)))
    assert {a.status_code for a in answers} <= {202, 409}, [a.text for a in answers]
    accepted = [a for a in answers if a.status_code == 202]
    assert len({a.json()["id"] for a in accepted}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in accepted) == 1
    for busy in (a for a in answers if a.status_code == 409):
        assert busy.json()["code"] == "idempotency_key_in_progress" and busy.headers["Retry-After"] == "1"
    job_id = accepted[0].json()["id"]
    await gateway.drive(job_id, "succeeded")
    assert gateway.sandbox.stats.created_total == 1
    assert await job_count(gateway) == 1


async def test_keys_are_scoped_per_tenant(gateway: Served, png_uri: str) -> None:
    service = gateway.gateway.service
    request = JobCreate(**body(png_uri))
    a = await service.submit(request, owner="a", idempotency_key="shared")
    b = await service.submit(request, owner="b", idempotency_key="shared")
    anonymous = await post(gateway, body(png_uri), "shared")
    assert anonymous.status_code == 202
    assert len({a.job.id, b.job.id, anonymous.json()["id"]}) == 3
    assert not (a.replayed or b.replayed)
    again = await service.submit(request, owner="a", idempotency_key="shared")
    assert again.replayed and again.job.id == a.job.id and again.job.owner == "a"


async def test_in_progress_abandoned_and_expired_keys(gateway: Served, png_uri: str) -> None:
    now = utcnow()
    reservation = IdempotencyKey(
        tenant="",
        key="busy",
        fingerprint=request_fingerprint(JobCreate(**body(png_uri))),
        created_at=now,
        expires_at=now + timedelta(days=1),
    )
    async with gateway.gateway.sessions.begin() as session:
        session.add(reservation)

    busy = await post(gateway, body(png_uri), "busy")
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    assert busy.json()["code"] == "idempotency_key_in_progress"

    # The request that reserved it died a while ago: the key is taken over.
    async with gateway.gateway.sessions.begin() as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == reservation.id)
            .values(created_at=now - timedelta(seconds=120))
        )
    taken = await post(gateway, body(png_uri), "busy")
    assert taken.status_code == 202 and "Idempotent-Replayed" not in taken.headers

    # Once expired, the key starts over, even with another body.
    assert (await post(gateway, body(png_uri), "other")).status_code == 202
    async with gateway.gateway.sessions.begin() as session:
        await session.execute(update(IdempotencyKey).values(expires_at=now - timedelta(seconds=1)))
    fresh = await post(gateway, body(png_uri, prompt="a dog"), "busy")
    assert fresh.status_code == 202 and "Idempotent-Replayed" not in fresh.headers
    assert fresh.json()["id"] != taken.json()["id"]
    assert await job_count(gateway) == 3
    async with gateway.gateway.sessions() as session:  # other expired keys were swept on the way
        keys = (await session.scalars(select(IdempotencyKey.key))).all()
    assert keys == ["busy"]


async def test_the_key_is_one_to_255_characters(gateway: Served, png_uri: str) -> None:
    for bad in ("x" * 256, ""):
        answer = await post(gateway, body(png_uri), bad)
        assert answer.status_code == 422 and answer.json()["field"] == "Idempotency-Key", answer.text
    assert (await post(gateway, body(png_uri), "x" * 255)).status_code == 202
