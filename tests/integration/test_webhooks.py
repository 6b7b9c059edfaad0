"""Signed webhooks over real loopback HTTP, verified on the receiving side with `standardwebhooks`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook
from starlette.responses import Response

from app.config import Settings
from app.jobs.models import Job
from app.lifespan import open_gateway
from tests.conftest import Served, make_settings, serve
from tests.helpers import wait_for
from tests.receiver import Receiver, receiver

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
FAST = "0,0.2,0.2,0.2,0.2,0.2"


@pytest.fixture
async def hooks(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    settings = make_settings(
        tmp_path,
        database_url,
        webhook_secret=SECRET,
        allow_private_urls=True,  # the receiver listens on 127.0.0.1
        webhook_retry_schedule=FAST,
        change_poll_interval_s=0.05,
    )
    async with serve(settings) as served:
        yield served


async def deliveries(served: Served, job_id: str) -> list[dict[str, Any]]:
    response = await served.client.get(f"/v1/jobs/{job_id}/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_terminal_event_arrives_signed_with_the_job_as_get_returns_it(
    hooks: Served, png_uri: str
) -> None:
    async with receiver(SECRET) as hook:
        job_id = await hooks.submit(png_uri, webhook_url=hook.url)
        await hooks.pump_until(lambda: bool(hook.requests), what="the webhook")

        [got] = hook.requests
        assert got.verified is not None, "the signature verifies with standardwebhooks"
        assert got.verified["type"] == "job.succeeded"
        current = await hooks.job(job_id)
        assert got.verified["data"]["id"] == job_id
        assert got.verified["data"]["result"] == current["result"]
        assert got.verified["data"]["status"] == "succeeded"
        assert got.headers["content-type"] == "application/json"

        [delivery] = await deliveries(hooks, job_id)
        assert delivery["id"] == got.webhook_id and delivery["status"] == "succeeded"
        assert delivery["type"] == "job.succeeded" and delivery["attempt_count"] == 1
        [attempt] = delivery["attempts"]
        assert attempt["status_code"] == 204 and attempt["error"] is None and attempt["latency_ms"] >= 0


async def test_events_filter_and_order(hooks: Served, png_uri: str) -> None:
    async with receiver(SECRET) as hook:
        job_id = await hooks.submit(
            png_uri, webhook_url=hook.url, webhook_events=["job.submitted", "job.succeeded"]
        )
        await hooks.pump_until(lambda: len(hook.delivered) == 2, what="two events")
        assert [r.type for r in hook.delivered] == ["job.submitted", "job.succeeded"]
        assert len({r.webhook_id for r in hook.delivered}) == 2  # one id per event
        assert (await hooks.job(job_id))["webhook_events"] == ["job.submitted", "job.succeeded"]


async def test_receiver_failing_at_first_gets_the_event_under_one_webhook_id(
    hooks: Served, png_uri: str
) -> None:
    def flaky(n: int) -> Response:
        return Response(status_code=500 if n <= 3 else 200, content=b"x" * 5000)

    async with receiver(SECRET, flaky) as hook:
        job_id = await hooks.submit(png_uri, webhook_url=hook.url)
        await hooks.pump_until(lambda: bool(hook.delivered), what="the event after three failures")
        assert len(hook.requests) == 4
        assert len({r.webhook_id for r in hook.requests}) == 1, "webhook-id is stable across retries"
        assert all(r.verified for r in hook.requests)
        [delivery] = await deliveries(hooks, job_id)
        assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 4
        codes = [a["status_code"] for a in delivery["attempts"]]
        assert codes == [500, 500, 500, 200]
        assert len(delivery["attempts"][0]["response_body"]) == 1024  # the first 1 KB is kept


async def test_receiver_down_for_a_while_then_up(hooks: Served, png_uri: str) -> None:
    hook = Receiver(secret=SECRET)
    await hook.start()
    url = hook.url
    await hook.stop()  # nothing listens: connections are refused
    job_id = await hooks.submit(png_uri, webhook_url=url)

    async def failed_twice() -> bool:
        attempts = [a for d in await deliveries(hooks, job_id) for a in d["attempts"]]
        return len(attempts) >= 2

    await hooks.pump_until(failed_twice, what="two refused attempts")
    [delivery] = await deliveries(hooks, job_id)
    assert delivery["status"] == "pending" and delivery["attempts"][0]["status_code"] is None
    assert delivery["attempts"][0]["error"]

    await hook.start()  # back up, same port
    try:
        await hooks.pump_until(lambda: bool(hook.delivered), what="delivery once the receiver is back")
        assert hook.delivered[0].webhook_id == delivery["id"]
    finally:
        await hook.stop()


async def test_410_stops_deliveries_to_that_endpoint(hooks: Served, png_uri: str) -> None:
    async with receiver(SECRET, lambda n: Response(status_code=410)) as hook:
        job_id = await hooks.submit(
            png_uri, webhook_url=hook.url, webhook_events=["job.submitted", "job.succeeded"]
        )

        async def settled() -> bool:
            listed = await deliveries(hooks, job_id)
            return len(listed) == 2 and all(d["status"] != "pending" for d in listed)

        await hooks.pump_until(settled, what="both deliveries to end")
        assert len(hook.requests) == 1, "after the 410 nothing else is sent there"
        submitted, succeeded = await deliveries(hooks, job_id)
        assert submitted["status"] == "failed" and "410" in submitted["last_error"]
        assert succeeded["status"] == "failed" and succeeded["attempts"] == []
        assert "410" in succeeded["last_error"]

        # A new job naming the endpoint again wants it: deliveries resume.
        hook.behaviour = lambda n: Response(status_code=204)
        await hooks.submit(png_uri, webhook_url=hook.url)
        await hooks.pump_until(lambda: bool(hook.delivered), what="delivery to the re-armed endpoint")


async def test_redirects_are_not_followed(hooks: Served, png_uri: str) -> None:
    async with receiver(SECRET) as hook:
        hook.behaviour = lambda n: Response(
            status_code=302, headers={"location": f"http://127.0.0.1:{hook.port}/elsewhere"}
        )
        job_id = await hooks.submit(png_uri, webhook_url=hook.url)

        async def gave_up() -> bool:
            listed = await deliveries(hooks, job_id)
            return bool(listed) and listed[0]["status"] == "failed"

        await hooks.pump_until(gave_up, what="the schedule to run out")
        [delivery] = await deliveries(hooks, job_id)
        assert delivery["status"] == "failed", "exhausted deliveries are kept, marked failed"
        assert len(delivery["attempts"]) == len(FAST.split(","))
        assert all(a["status_code"] == 302 and "redirect" in a["error"] for a in delivery["attempts"])
        assert all(r.headers for r in hook.requests), "the redirect target (/elsewhere) was never called"


async def test_retry_after_is_honoured(hooks: Served, png_uri: str) -> None:
    async with receiver(
        SECRET,
        lambda n: (
            Response(status_code=429, headers={"retry-after": "1"}) if n == 1 else Response(status_code=204)
        ),
    ) as hook:
        await hooks.submit(png_uri, webhook_url=hook.url)
        await hooks.pump_until(lambda: bool(hook.delivered), what="delivery after the 429")
        first, second = hook.requests
        assert second.at - first.at >= 1.0  # not on the 0.2 s schedule: the receiver asked for 1 s


@pytest.fixture
async def rotating(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    settings = make_settings(
        tmp_path, database_url, webhook_secret=f"{SECRET},{OLD_SECRET}", allow_private_urls=True
    )
    async with serve(settings) as served:
        yield served


async def test_secret_rotation_signs_with_every_secret(rotating: Served, png_uri: str) -> None:
    async with receiver(OLD_SECRET) as hook:  # a receiver not yet moved to the new secret
        await rotating.submit(png_uri, webhook_url=hook.url)
        await rotating.pump_until(lambda: bool(hook.requests), what="the webhook")
        [got] = hook.requests
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        assert got.verified is not None  # verifies with the old secret…
        assert Webhook(SECRET).verify(got.body, got.headers)["type"] == "job.succeeded"  # …and the new one


async def test_default_endpoint_gets_every_jobs_terminal_events(
    tmp_path: Path, database_url: str, png_uri: str
) -> None:
    async with receiver(SECRET) as hook:
        settings = make_settings(
            tmp_path,
            database_url,
            webhook_secret=SECRET,
            allow_private_urls=True,
            webhook_default_url=hook.url,
        )
        async with serve(settings) as served:
            first = await served.submit(png_uri)
            second = await served.submit(png_uri)
            await served.pump_until(lambda: len(hook.delivered) == 2, what="both jobs' events")
            assert {r.verified["data"]["id"] for r in hook.delivered if r.verified} == {first, second}


async def test_generated_secret_when_none_is_configured(
    tmp_path: Path, database_url: str, png_uri: str
) -> None:
    settings = make_settings(tmp_path, database_url, allow_private_urls=True)
    async with serve(settings) as served:
        [secret] = await served.gateway.secrets.get()
        assert secret.startswith("whsec_")
        async with receiver(secret) as hook:
            await served.submit(png_uri, webhook_url=hook.url)
            await served.pump_until(lambda: bool(hook.requests), what="the webhook")
            assert hook.requests[0].verified is not None


async def test_manual_redelivery_reuses_the_webhook_id(hooks: Served, png_uri: str) -> None:
    async with receiver(SECRET) as hook:
        job_id = await hooks.submit(png_uri, webhook_url=hook.url)
        await hooks.pump_until(lambda: bool(hook.delivered), what="the first delivery")
        [delivery] = await deliveries(hooks, job_id)
        response = await hooks.client.post(f"/v1/jobs/{job_id}/deliveries/{delivery['id']}/redeliver")
        assert response.status_code == 202 and response.json()["status"] == "pending"
        await hooks.pump_until(lambda: len(hook.delivered) == 2, what="the replay")
        assert hook.delivered[0].webhook_id == hook.delivered[1].webhook_id == delivery["id"]
        assert hook.delivered[0].body == hook.delivered[1].body
        missing = await hooks.client.post(f"/v1/jobs/{job_id}/deliveries/msg_nope/redeliver")
        assert missing.status_code == 404


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://localhost/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://100.100.100.200/", "metadata"),
        ("ftp://example.com/hook", "http"),
        ("https://no-such-host.invalid/hook", "resolve"),
    ],
)
async def test_unsafe_webhook_urls_are_refused_at_submit(
    gateway: Served, png_uri: str, url: str, words: str
) -> None:
    response = await gateway.client.post(
        "/v1/jobs", json={"prompt": "p", "reference_image": png_uri, "webhook_url": url}
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == "webhook_url"
    assert words in problem["detail"].lower()


async def test_metadata_is_refused_even_when_private_addresses_are_allowed(
    hooks: Served, png_uri: str
) -> None:
    response = await hooks.client.post(
        "/v1/jobs",
        json={"prompt": "p", "reference_image": png_uri, "webhook_url": "http://169.254.169.254/x"},
    )
    assert response.status_code == 422 and response.json()["field"] == "webhook_url"


async def test_unsafe_address_is_refused_again_at_send_time(gateway: Served, png_uri: str) -> None:
    """A URL that resolves somewhere refused by the time it is used (DNS changed, settings changed)."""
    async with receiver(SECRET) as hook:
        job_id = await gateway.submit(png_uri)
        async with gateway.gateway.sessions.begin() as session:
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(webhook_url=hook.url, webhook_events=["job.succeeded"])
            )
        await gateway.drive(job_id, "succeeded")

        async def ended() -> bool:
            listed = await deliveries(gateway, job_id)
            return bool(listed) and listed[0]["status"] != "pending"

        await gateway.pump_until(ended, what="the delivery to end")
        assert hook.requests == []
        [delivery] = await deliveries(gateway, job_id)
        assert delivery["status"] == "failed" and "loopback" in delivery["last_error"]
        assert delivery["attempts"][0]["status_code"] is None


async def test_a_hanging_endpoint_takes_only_its_share_of_the_dispatchers(
    tmp_path: Path, database_url: str, png_uri: str
) -> None:
    """Deliveries to a tarpit that fell due first must not hold every slot: another endpoint's deliveries
    go out while the tarpit's hang, and the tarpit never has more than WEBHOOK_ENDPOINT_CONCURRENCY of
    them in flight, counted across all workers of the database."""
    cap = 2

    def worker_settings(name: str) -> Settings:
        return make_settings(
            tmp_path / name,
            database_url,
            webhook_secret=SECRET,
            allow_private_urls=True,
            webhook_concurrency=3,
            webhook_endpoint_concurrency=cap,
            webhook_timeout_s=120,  # the tarpit answers when the test releases it, never by timing out
            change_poll_interval_s=120,  # a freed slot must be refilled at once, not on the idle timer
        )

    async with (
        serve(worker_settings("api")) as served,
        open_gateway(worker_settings("replica"), start_loops=False) as replica,
        receiver(SECRET) as tarpit,
        receiver(SECRET) as healthy,
    ):
        tarpit.hold()
        queued = {"webhook_events": ["job.queued"]}  # one delivery per job, due as the job is created
        for _ in range(6):
            await served.submit(png_uri, webhook_url=tarpit.url, **queued)
        for _ in range(3):  # due after every tarpit delivery
            await served.submit(png_uri, webhook_url=healthy.url, **queued)

        stop = asyncio.Event()
        loop = asyncio.create_task(served.gateway.dispatcher.run(stop))
        other: asyncio.Task[int] | None = None
        try:

            async def healthy_done_while_tarpit_holds() -> bool:
                return tarpit.most_held > cap or (len(healthy.delivered) == 3 and tarpit.held == cap)

            await wait_for(healthy_done_while_tarpit_holds, what="the healthy endpoint's deliveries")
            assert tarpit.most_held <= cap, "one endpoint held more than its share of the slots"
            assert tarpit.requests == [], "all of that happened while every tarpit request hung"

            # Another worker with free slots: the tarpit's share is used up, counted in the database.
            other = asyncio.create_task(replica.dispatcher.run_once())

            async def other_claimed() -> bool:
                return bool(other and other.done()) or tarpit.most_held > cap

            await wait_for(other_claimed, what="the other worker's claim")
            assert tarpit.most_held <= cap, "the other worker sent more to the tarpit"
            assert await other == 0

            tarpit.release()

            async def tarpit_done() -> bool:
                return len(tarpit.delivered) == 6

            await wait_for(tarpit_done, what="the tarpit's deliveries once it answers")
        finally:
            tarpit.release()
            stop.set()
            await asyncio.gather(loop, *([other] if other else []))
