"""`/metrics` in the Prometheus text format: queue depth, upstream tasks in flight, the oldest due job,
spend (money and billed seconds per currency, model and tenant: ops/usage.py), and in an account pool
which accounts are in rotation (`wan_gateway_upstream_account_up`, this process's view); then this
process's own counters and histograms (jobs finished, upstream calls, copies, webhook attempts:
`app/telemetry/metrics.py`).

The figures are read from the database at scrape time (every process sees the same queue), so any API or
worker replica can be scraped; per-process figures (loop heartbeats) come from the process that answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.db.base import utcnow
from app.ops.readiness import Heartbeat
from app.ops.stats import QueueStats, queue_stats
from app.ops.usage import GroupBy, Spend, UsageRow, spend, usage
from app.telemetry import metrics as process_metrics

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.metrics_core import Metric
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.providers.health import AccountHealth

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Snapshot(Collector):
    """Turns one QueueStats (read before the scrape is rendered) into gauges."""

    def __init__(
        self,
        stats: QueueStats,
        heartbeats: dict[str, float | None],
        spent: Sequence[Spend] = (),
        accounts_up: dict[str, bool] | None = None,
    ) -> None:
        self._stats = stats
        self._heartbeats = heartbeats
        self._spent = spent
        self._accounts_up = accounts_up or {}

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
        up = GaugeMetricFamily(
            "wan_gateway_upstream_account_up",
            "1 while a pooled upstream account is in rotation, 0 while its key is refused (as this process "
            "has seen; absent without a pool).",
            labels=["account"],
        )
        for account, is_up in sorted(self._accounts_up.items()):
            up.add_metric([account], 1.0 if is_up else 0.0)
        yield up
        # Counters read from the database (job rows are never removed, so they only grow): every replica
        # answers the same figures, and a restart does not reset them.
        money = CounterMetricFamily(
            "wan_gateway_spend",
            "Money billed for finished jobs (the price table's amounts), by currency, model and tenant.",
            labels=["currency", "model", "tenant"],
        )
        seconds = CounterMetricFamily(
            "wan_gateway_billed_seconds",
            "Seconds of video billed for finished jobs, by model and tenant.",
            labels=["model", "tenant"],
        )
        by_model_tenant: dict[tuple[str, str], float] = {}
        for row in self._spent:
            money.add_metric([row.currency, row.model, row.tenant], row.amount)
            key = (row.model, row.tenant)
            by_model_tenant[key] = by_model_tenant.get(key, 0.0) + row.billed_seconds
        for (model, tenant), value in sorted(by_model_tenant.items()):
            seconds.add_metric([model, tenant], value)
        yield money
        yield seconds


class Metrics:
    """The queue figures (`/v1/admin/stats`), spend (`/v1/usage`) and their Prometheus rendering
    (`/metrics`), with the heartbeats of the loops this process runs (`loops`: empty when it runs none)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        loops: Sequence[Heartbeat],
        accounts: AccountHealth | None = None,
    ) -> None:
        self._sessions = sessions
        self._loops = tuple(loops)
        self._accounts = accounts

    async def queue(self, now: datetime) -> QueueStats:
        async with self._sessions() as session:
            return await queue_stats(session, now)

    async def usage(
        self, *, since: datetime, until: datetime, group_by: GroupBy, tenant: str | None, every_tenant: bool
    ) -> list[UsageRow]:
        """`GET /v1/usage`'s rows (ops/usage.py)."""
        async with self._sessions() as session:
            return await usage(
                session, since=since, until=until, group_by=group_by, tenant=tenant, every_tenant=every_tenant
            )

    async def render(self) -> bytes:
        now = utcnow()
        stats = await self.queue(now)
        async with self._sessions() as session:
            spent = await spend(session)
        heartbeats: dict[str, float | None] = {}
        for loop in self._loops:
            last = loop.last_tick_at
            heartbeats[loop.name.replace(" ", "_")] = None if last is None else (now - last).total_seconds()
        registry = CollectorRegistry(auto_describe=False)
        health = self._accounts
        if health is not None:
            await health.refresh(force=True)  # shared by every process (providers/health.py)
        accounts_up = {name: health.up(name) for name in health.names} if health is not None else {}
        registry.register(_Snapshot(stats, heartbeats, spent, accounts_up))
        # Two registries, one exposition: the families' names never overlap.
        return generate_latest(registry) + process_metrics.render()
