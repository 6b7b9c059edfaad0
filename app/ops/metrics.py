"""`/metrics` in the Prometheus text format: queue depth, upstream tasks in flight, the oldest due job.

The figures are read from the database at scrape time (every process sees the same queue), so any API or
worker replica can be scraped; per-process figures (loop heartbeats) come from the process that answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.db.base import utcnow
from app.ops.readiness import Heartbeat
from app.ops.stats import QueueStats, queue_stats

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.metrics_core import Metric
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Snapshot(Collector):
    """Turns one QueueStats (read before the scrape is rendered) into gauges."""

    def __init__(self, stats: QueueStats, heartbeats: dict[str, float | None]) -> None:
        self._stats = stats
        self._heartbeats = heartbeats

    def collect(self) -> Iterable[Metric]:
        stats = self._stats
        jobs = GaugeMetricFamily("wan_gateway_jobs", "Jobs by status.", labels=["status"])
        for status, count in stats.jobs_by_status.items():
            jobs.add_metric([status], count)
        yield jobs
        in_flight = GaugeMetricFamily(
            "wan_gateway_upstream_tasks_in_flight",
            "Upstream tasks PENDING or RUNNING (or being created), per model family.",
            labels=["family"],
        )
        for family, count in sorted(stats.upstream_in_flight.items()):
            in_flight.add_metric([family], count)
        yield in_flight
        yield GaugeMetricFamily(
            "wan_gateway_jobs_due", "Jobs whose next step is due now.", value=stats.due_jobs
        )
        yield GaugeMetricFamily(
            "wan_gateway_oldest_due_job_age_seconds",
            "How long the oldest due job has been waiting for a worker (0 when none is due).",
            value=stats.oldest_due_age_s or 0.0,
        )
        yield GaugeMetricFamily(
            "wan_gateway_jobs_leased", "Jobs a worker holds right now.", value=stats.leased_jobs
        )
        deliveries = GaugeMetricFamily(
            "wan_gateway_webhook_deliveries", "Webhook deliveries by status.", labels=["status"]
        )
        for status, count in sorted(stats.deliveries_by_status.items()):
            deliveries.add_metric([status], count)
        yield deliveries
        yield GaugeMetricFamily(
            "wan_gateway_oldest_due_delivery_age_seconds",
            "How long the oldest due webhook delivery has been waiting (0 when none is due).",
            value=stats.oldest_due_delivery_age_s or 0.0,
        )
        beats = GaugeMetricFamily(
            "wan_gateway_loop_heartbeat_age_seconds",
            "Seconds since this process's loop last turned (absent when the process runs no loops).",
            labels=["loop"],
        )
        for loop, age in self._heartbeats.items():
            if age is not None:
                beats.add_metric([loop], age)
        yield beats


class Metrics:
    """The queue figures (`/v1/admin/stats`) and their Prometheus rendering (`/metrics`), with the
    heartbeats of the loops this process runs (`loops`: empty when it runs none)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, loops: Sequence[Heartbeat]) -> None:
        self._sessions = sessions
        self._loops = tuple(loops)

    async def queue(self, now: datetime) -> QueueStats:
        async with self._sessions() as session:
            return await queue_stats(session, now)

    async def render(self) -> bytes:
        now = utcnow()
        stats = await self.queue(now)
        heartbeats: dict[str, float | None] = {}
        for loop in self._loops:
            last = loop.last_tick_at
            heartbeats[loop.name.replace(" ", "_")] = None if last is None else (now - last).total_seconds()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(stats, heartbeats))
        return generate_latest(registry)
