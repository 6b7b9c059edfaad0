"""Settings → the configuration of each component: the one place a setting reaches the code that uses it.

`Settings` (app/config.py) stays flat, because its field names are the environment's names (the public
contract) and several components share a setting (`LEASE_S`: the poller and the dispatcher;
`ALLOW_PRIVATE_URLS`: intake, image fetches and webhook sends). Each component declares the few values it
needs in a config of its own *without defaults*, so a default is written once, in `Settings`, and a
component built anywhere else (a test, a tool) must say what it runs with. The lifespan calls these.
"""

from __future__ import annotations

import dataclasses

import httpx

from app.api.deps import StreamTimings
from app.billing.cost import Pricing, resolve_region, to_micros
from app.billing.table import PriceTable, load_table
from app.config import Settings, UpstreamAccount
from app.jobs.images import ImageLimits
from app.jobs.poller import PollerConfig
from app.jobs.retention import RetentionConfig
from app.jobs.service import ServiceConfig
from app.links import LinkSigner
from app.sandbox.config import SandboxConfig
from app.tenants.quotas import QuotaLimits
from app.webhooks.dispatcher import DispatcherConfig
from app.webhooks.outbox import WebhookTarget


def price_table(settings: Settings) -> PriceTable:
    """The built-in price table with PRICE_TABLE_FILE over it (a bad file raises `PriceTableError`)."""
    return load_table(settings.price_table_file)


def pricing(
    settings: Settings,
    base_url: str,
    table: PriceTable | None = None,
    *,
    region: str | None = None,
    accounts: list[UpstreamAccount] | None = None,
) -> Pricing:
    """`table` (default: `price_table`) priced in the region the upstream at `base_url` bills in
    (`region` — a DASHSCOPE_ACCOUNTS entry's —, else DASHSCOPE_REGION, else derived from the host), and
    for a pool each of its `accounts` in its own region (`pool_regions`). A pool mixing currencies raises
    `billing.cost.MixedCurrencies`, naming each account's region."""
    table = table if table is not None else price_table(settings)
    regions = pool_regions(settings, accounts) if accounts else {}
    return Pricing(table, resolve_region(region or settings.dashscope_region, base_url), regions)


def pool_regions(settings: Settings, accounts: list[UpstreamAccount]) -> dict[str, str]:
    """Each pooled account's price region (its `region`, else DASHSCOPE_REGION, else its host's)."""
    default = settings.dashscope_base_url
    return {
        a.name: resolve_region(a.region or settings.dashscope_region, a.base_url or default) for a in accounts
    }


def upstream_timeout(settings: Settings) -> httpx.Timeout:
    """DashScope API calls (create, get, cancel, list)."""
    return httpx.Timeout(settings.upstream_read_timeout_s, connect=settings.upstream_connect_timeout_s)


def download_timeout(settings: Settings) -> httpx.Timeout:
    """Copies of result videos."""
    return httpx.Timeout(settings.download_timeout_s, connect=settings.upstream_connect_timeout_s)


def poller_config(settings: Settings) -> PollerConfig:
    return PollerConfig(
        poll_min_s=settings.poll_min_interval_s,
        poll_max_s=settings.poll_max_interval_s,
        lease_s=settings.lease_s,
        concurrency=settings.worker_concurrency,
        batch_size=settings.worker_batch_size,
        reconcile_grace_s=settings.reconcile_grace_s,
        max_inflight=dict(settings.upstream_max_inflight),  # every family: merged with the defaults
        max_video_bytes=settings.max_video_bytes,
        download_timeout_s=settings.download_timeout_s,
    )


def retention_config(settings: Settings) -> RetentionConfig | None:
    """STORAGE_RETENTION_S; None when videos are kept forever (no loop runs)."""
    if not settings.storage_retention_s:
        return None
    return RetentionConfig(
        retention_s=settings.storage_retention_s,
        lease_s=settings.lease_s,
        batch_size=settings.worker_batch_size,
        # Retention counts in hours or days; a minute between looks is plenty, and never longer than it.
        idle_max_s=min(60.0, settings.storage_retention_s),
    )


def service_config(settings: Settings) -> ServiceConfig:
    return ServiceConfig(
        job_deadline_s=settings.job_deadline_s,
        allow_private_urls=settings.allow_private_urls,
        change_poll_interval_s=settings.change_poll_interval_s,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        result_cache=settings.result_cache,
        poll_min_s=settings.poll_min_interval_s,
        poll_max_s=settings.poll_max_interval_s,
        storage_retention_s=settings.storage_retention_s or None,
        max_inflight=dict(settings.upstream_max_inflight),
    )


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(
        min_side=settings.image_min_side_px,
        max_side=settings.image_max_side_px,
        max_bytes=settings.image_max_bytes,
    )


def dispatcher_config(settings: Settings) -> DispatcherConfig:
    return DispatcherConfig(
        schedule=tuple(settings.webhook_retry_schedule),
        timeout_s=settings.webhook_timeout_s,
        concurrency=settings.webhook_concurrency,
        endpoint_concurrency=settings.webhook_endpoint_concurrency,
        lease_s=settings.lease_s,
        allow_private=settings.allow_private_urls,
        idle_max_s=settings.change_poll_interval_s,
    )


def default_webhook(settings: Settings) -> WebhookTarget | None:
    """WEBHOOK_DEFAULT_URL, with the events it wants."""
    if not settings.webhook_default_url:
        return None
    return WebhookTarget(settings.webhook_default_url, frozenset(settings.webhook_default_events))


def quota_limits(settings: Settings) -> QuotaLimits:
    """The per-key quotas of keys without overrides."""
    return QuotaLimits(
        max_active_jobs=settings.quota_max_active_jobs,
        submits_per_minute=settings.quota_submits_per_minute,
        video_seconds_per_day=settings.quota_video_seconds_per_day,
        budget_micros=to_micros(settings.quota_budget),
        budget_period=settings.quota_budget_period,
    )


def link_signer(settings: Settings, secret: str) -> LinkSigner:
    """Signed download links (`secret`: LINK_SIGNING_SECRET or the database's, app/links.load_secret)."""
    return LinkSigner(secret, public_base_url=settings.public_base_url, ttl_s=settings.link_ttl_s)


def stream_timings(settings: Settings) -> StreamTimings:
    return StreamTimings(
        keepalive_s=settings.sse_keepalive_s,
        recheck_s=settings.change_poll_interval_s,
        progress_s=settings.sse_progress_interval_s,
    )


def sandbox_config(settings: Settings) -> SandboxConfig:
    """The embedded sandbox: its own `SANDBOX_*` settings, its tasks beside the gateway's database unless
    SANDBOX_STATE_PATH says otherwise, and the gateway's image limits (IMAGE_*), so that what the gateway
    lets through is what its sandbox accepts."""
    config = SandboxConfig.from_settings(
        settings.sandbox, default_state_path=settings.default_sandbox_state_path
    )
    return dataclasses.replace(
        config,
        image_min_side_px=settings.image_min_side_px,
        image_max_side_px=settings.image_max_side_px,
        image_max_bytes=settings.image_max_bytes,
    )
