"""`/metrics`' own counters and histograms, over real HTTP against the sandbox: a job that succeeds (after
one throttled poll), one that fails upstream and a webhook delivered, then one scrape that shows each new
family with its labels and the values those three caused (deltas: the figures are this process's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Served, make_settings, serve
from tests.receiver import receiver

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MODEL = "wan2.6-i2v-flash"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture
async def served(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    settings = make_settings(
        tmp_path, database_url, webhook_secret=SECRET, allow_private_urls=True, webhook_retry_schedule="0"
    )
    async with serve(settings) as running:
        yield running


async def test_jobs_upstream_calls_copies_and_webhooks_are_counted(served: Served, png_uri: str) -> None:
    before = samples((await served.client.get("/metrics")).text)
    async with receiver(SECRET) as hook:
        served.sandbox.faults.add("get:429*1")  # one throttled poll, then the job goes on
        ok = await served.submit(png_uri, model=MODEL, webhook_url=hook.url)
        failed = await served.submit(png_uri, model=MODEL, prompt="a cat [sandbox:FAILED/InternalError]")
        assert (await served.drive(ok, "succeeded", "failed"))["status"] == "succeeded"
        assert (await served.drive(failed, "succeeded", "failed"))["error"]["code"] == "upstream_failed"
        await served.pump_until(lambda: bool(hook.requests), what="the webhook")
    video = await served.job(ok)
    response = await served.client.get("/metrics")
    assert response.status_code == 200
    after = samples(response.text)

    finished = "wan_gateway_jobs_finished_total"
    assert delta(before, after, finished, status="succeeded", error_code="none", model=MODEL) == 1
    assert delta(before, after, finished, status="failed", error_code="upstream_failed", model=MODEL) == 1

    calls = "wan_gateway_upstream_calls_total"
    assert delta(before, after, calls, operation="create", outcome="ok") == 2
    assert delta(before, after, calls, operation="get", outcome="ok") >= 2
    assert delta(before, after, calls, operation="get", outcome="http_429") == 1
    assert delta(before, after, "wan_gateway_upstream_throttled_total", operation="get") == 1
    latency = "wan_gateway_upstream_call_duration_seconds"
    assert delta(before, after, f"{latency}_count", operation="create") == 2
    assert delta(before, after, f"{latency}_bucket", operation="create", le="+Inf") == 2
    assert 0 < delta(before, after, f"{latency}_sum", operation="create") < 10

    for histogram, count in [
        ("wan_gateway_queue_wait_seconds", 2),  # both were submitted
        ("wan_gateway_task_run_seconds", 2),  # both ran upstream
        ("wan_gateway_end_to_stored_seconds", 1),  # one was stored
    ]:
        assert delta(before, after, f"{histogram}_count", model=MODEL) == count, histogram
        assert delta(before, after, f"{histogram}_sum", model=MODEL) >= 0, histogram

    assert delta(before, after, "wan_gateway_stored_bytes_total") == video["result"]["bytes"] > 0
    assert delta(before, after, "wan_gateway_copy_throughput_bytes_per_second_count") == 1
    assert delta(before, after, "wan_gateway_copy_throughput_bytes_per_second_sum") > 0
    assert delta(before, after, "wan_gateway_webhook_attempts_total", outcome="ok") == 1

    # Bounded labels: no job id, tenant or URL anywhere in the new families.
    own = [line for line in response.text.splitlines() if line.startswith(("wan_gateway_jobs_finished",))]
    assert own and not any(ok in line or failed in line for line in response.text.splitlines())
