"""Traces (OpenTelemetry, the `otel` extra) with an in-memory exporter: one job end to end — submit, its
upstream create and polls, the copy, the webhook — is one trace whose spans name the job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.telemetry import tracing
from tests.conftest import make_settings, serve
from tests.receiver import receiver

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(spans))
    try:
        yield spans
    finally:
        tracing.uninstall()
    assert not tracing.enabled()


async def test_one_job_is_one_trace_from_submit_to_webhook(
    tmp_path: Path, database_url: str, png_uri: str, exporter: InMemorySpanExporter
) -> None:
    settings = make_settings(
        tmp_path, database_url, webhook_secret=SECRET, allow_private_urls=True, webhook_retry_schedule="0"
    )
    async with serve(settings) as served, receiver(SECRET) as hook:
        job_id = await served.submit(png_uri, webhook_url=hook.url)
        assert (await served.drive(job_id, "succeeded", "failed"))["status"] == "succeeded"
        await served.pump_until(lambda: bool(hook.requests), what="the webhook")
    spans: tuple[ReadableSpan, ...] = exporter.get_finished_spans()

    def named(name: str) -> list[ReadableSpan]:
        return [s for s in spans if s.name == name]

    [submit] = [s for s in named("POST /v1/jobs") if s.kind is SpanKind.SERVER]
    assert submit.attributes is not None and submit.attributes["wan.job_id"] == job_id
    assert submit.context is not None
    trace_id = submit.context.trace_id
    in_trace = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]

    def about_the_job(s: ReadableSpan) -> bool:
        return s.attributes is not None and s.attributes.get("wan.job_id") == job_id

    # The worker's steps: children of the submit's context, each naming the job.
    for name in ("wan.job.submit", "wan.job.poll", "wan.storage.copy", "wan.webhook.deliver"):
        found = [s for s in in_trace if s.name == name]
        assert found and all(about_the_job(s) for s in found), (name, [s.name for s in in_trace])
    # Inside them, the instrumented clients: the upstream create and polls, the download, the webhook
    # POST (httpx), and the SQL (SQLAlchemy), all in the job's trace and naming the job.
    client_urls = [
        str((s.attributes or {}).get("url.full") or (s.attributes or {}).get("http.url"))
        for s in in_trace
        if s.kind is SpanKind.CLIENT and about_the_job(s)
    ]
    assert any("video-synthesis" in url for url in client_urls), client_urls  # create
    assert any("/tasks/" in url for url in client_urls), client_urls  # poll
    assert any(url.startswith(hook.url) for url in client_urls), client_urls  # webhook
    assert any(url.endswith(".mp4") or "/files/" in url for url in client_urls), client_urls  # download
    sql = [s for s in in_trace if {"db.system", "db.system.name"} & set(s.attributes or {})]
    assert sql and any(about_the_job(s) for s in sql)
    # No trace starts with a lone client span (the loops' SQL); probes and scrapes make no spans.
    assert not [s for s in spans if s.kind is SpanKind.CLIENT and s.parent is None]
    assert not [s for s in spans if "/metrics" in s.name or "/readyz" in s.name]
