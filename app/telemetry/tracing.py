"""OpenTelemetry traces, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (the `otel` extra).

Off, every function here is a check of one attribute: OpenTelemetry is imported only by `enable`/`install`
(lazily, so the default path loads none of it) and nothing is instrumented.

On, the process gets one `TracerProvider` (OTLP over HTTP to `<endpoint>/v1/traces`, batched; the SDK's
own `OTEL_*` variables — service name, headers, sampler — apply) handed explicitly to the FastAPI,
httpx and SQLAlchemy instrumentations of this process's own app, clients and engine (never patched
globally). A job is one trace: `JobService.submit` stores the submit's context on the job
(`jobs.traceparent`, W3C trace context), and every later span about it — the worker's submit upstream,
each poll, the copy, each webhook delivery — is started as a child of it by `job_span`, with its
`wan.job_id`; every span started inside one (the httpx call upstream, the SQL, the download) carries
`wan.job_id` too (`_JobIdProcessor`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Tracer
    from sqlalchemy.ext.asyncio import AsyncEngine

#: The attribute naming the job a span is about.
JOB_ID = "wan.job_id"
#: Paths whose requests make no span: probes and scrapes, every few seconds, saying nothing.
EXCLUDED_URLS = "healthz,readyz,metrics"
_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("wan_gateway_job_id", default=None)


class _State:
    provider: TracerProvider | None = None
    tracer: Tracer | None = None


_state = _State()


def enabled() -> bool:
    return _state.tracer is not None


def enable(endpoint: str | None) -> bool:
    """Install this process's provider, exporting to `endpoint` (OTLP/HTTP), unless one is installed
    already (the first wins: a test installs its in-memory exporter first). False: tracing stays off."""
    if _state.provider is not None:
        return True
    if not endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The generic endpoint variable names the collector; traces go to its /v1/traces (OTLP/HTTP).
    install(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    return True


def install(processor: SpanProcessor) -> TracerProvider:
    """Make this process's provider, exporting through `processor` (replacing any earlier one)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind

    class _NoLoneClientSpans(Sampler):
        """Drops a client span (SQL, HTTP) that starts a trace: the loops' claims and bookkeeping, many a
        second and about no request or job. Within a request's or a job step's trace, all is kept."""

        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if kind is SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

        def get_description(self) -> str:
            return "NoLoneClientSpans"

    class _JobIdProcessor(SpanProcessor):
        """Every span started while a job is being worked on (`job_span`) names the job."""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            job_id = _job.get()
            if job_id is not None:
                span.set_attribute(JOB_ID, job_id)

    uninstall()
    # OTEL_SERVICE_NAME (and OTEL_RESOURCE_ATTRIBUTES) win over the default name.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "wan-gateway"}
    # OTEL_TRACES_SAMPLER, when set, wins over the default sampler.
    sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else ParentBased(root=_NoLoneClientSpans())
    provider = TracerProvider(resource=Resource.create(attributes), sampler=sampler)
    provider.add_span_processor(_JobIdProcessor())
    provider.add_span_processor(processor)
    _state.provider = provider
    _state.tracer = provider.get_tracer("wan-gateway")
    return provider


def uninstall() -> None:
    """Flush and drop the provider: tracing is off again."""
    provider, _state.provider, _state.tracer = _state.provider, None, None
    if provider is not None:
        provider.shutdown()


def flush() -> None:
    """Export what is buffered (a process about to exit)."""
    if _state.provider is not None:
        _state.provider.force_flush()


# --- instrumentation of this process's own objects ---------------------------------------------------
def instrument_app(app: FastAPI) -> None:
    """A server span per request (FastAPI's instrumentation), when tracing is on."""
    if _state.provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_state.provider, excluded_urls=EXCLUDED_URLS)


def instrument_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client span per request of `client` (the upstream, the downloads, a webhook), when on."""
    if _state.provider is not None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_state.provider)
    return client


def instrument_engine(engine: AsyncEngine) -> None:
    """A span per SQL statement on `engine`, when on. Its listeners are attached to this engine only
    (`EngineTracer`): the instrumentor's `instrument()` would wrap every engine the process creates."""
    if _state.tracer is None:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    meter = NoOpMeterProvider().get_meter("wan-gateway")  # its connection metrics: not wanted
    unused = meter.create_up_down_counter("db.client.connections.usage")
    EngineTracer(_state.tracer, engine.sync_engine, unused)  # type: ignore[no-untyped-call]


# --- spans -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def job_span(name: str, job_id: str, traceparent: str | None, **attributes: str | int) -> Iterator[None]:
    """Work on job `job_id`: a span in the job's trace (a child of the submit's context `traceparent`, a
    trace of its own without one); every span started inside carries `wan.job_id`."""
    token = _job.set(job_id)
    try:
        if _state.tracer is None:
            yield
            return
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier = {"traceparent": traceparent} if traceparent else {}
        parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
        with _state.tracer.start_as_current_span(
            name, context=parent, attributes={JOB_ID: job_id, **attributes}
        ):
            yield
    finally:
        _job.reset(token)


@contextlib.contextmanager
def span(name: str, **attributes: str | int) -> Iterator[None]:
    """A span of its own under the current one (the copy), when on."""
    if _state.tracer is None:
        yield
        return
    with _state.tracer.start_as_current_span(name, attributes=attributes):
        yield


def name_job(job_id: str) -> None:
    """Name the job on the current span (the request that submitted it), when on."""
    if _state.tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute(JOB_ID, job_id)


def current_traceparent() -> str | None:
    """The current span's context as a W3C `traceparent` (None when off or outside a span): what a new
    job stores so its later spans join the submit's trace."""
    if _state.tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")
