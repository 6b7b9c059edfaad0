"""Text from outside that no database stores as is (U+0000, lone surrogates) is kept readably (U+FFFD).

PostgreSQL refuses NUL in text and JSONB; no database (nor a JSON answer) encodes a lone surrogate. What a
receiver or DashScope sends cannot be refused, so the column types of app/db/base.py make it storable.
Before, a job stayed `running` forever and a delivered webhook was re-sent every minute. Both passes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.responses import Response

from app.webhooks.models import WebhookAttempt
from tests.conftest import Served, make_settings, serve
from tests.receiver import receiver

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
async def hooks(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    settings = make_settings(
        tmp_path,
        database_url,
        webhook_secret=SECRET,
        allow_private_urls=True,  # the receiver listens on 127.0.0.1
        webhook_retry_schedule="0,0.2,0.2",
    )
    async with serve(settings) as served:
        yield served


async def test_a_receiver_answering_nul_bytes_is_delivered_once(hooks: Served, png_uri: str) -> None:
    def answer(_: int) -> Response:
        return Response(b"ok\x00\x00 thanks", status_code=200)

    async with receiver(SECRET, answer) as hook:
        job_id = await hooks.submit(png_uri, webhook_url=hook.url)
        await hooks.drive(job_id, "succeeded")
        await hooks.pump_until(lambda: bool(hook.requests), what="the webhook")
        # Were the attempt not recorded, the delivery would still be due (its lease lapses, it is re-sent).
        for _ in range(3):
            await hooks.gateway.dispatcher.run_once()

        [delivery] = (await hooks.client.get(f"/v1/jobs/{job_id}/deliveries")).json()["data"]
        assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 1
        [attempt] = delivery["attempts"]
        assert attempt["status_code"] == 200
        assert attempt["response_body"] == "ok\ufffd\ufffd thanks"
        assert len(hook.requests) == 1
    async with hooks.gateway.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookAttempt)) == 1


async def test_a_failed_task_whose_code_and_message_hold_nul_fails_the_job_readably(
    gateway: Served, png_uri: str
) -> None:
    job_id = await gateway.submit(png_uri, prompt="a cat [sandbox:FAILED/InternalError] [sandbox:nul]")
    job = await gateway.drive(job_id, "failed")
    assert job["error"]["upstream_code"] == "InternalError\ufffd\ufffd"
    assert job["error"]["message"].endswith("\ufffd\ufffd")
    assert "\x00" not in job["error"]["message"]


async def test_a_succeeded_task_whose_prompt_echo_holds_nul_succeeds(gateway: Served, png_uri: str) -> None:
    # orig_prompt and actual_prompt land in the same `upstream` document; wan2.6 answers only the first
    # (the other models need 5-second clips, slower to make).
    job_id = await gateway.submit(png_uri, prompt="a cat [sandbox:nul]")
    job = await gateway.drive(job_id, "succeeded")
    assert job["upstream"]["orig_prompt"] == "a cat [sandbox:nul]\ufffd\ufffd"
    assert job["result"]["sha256"]
