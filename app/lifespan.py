"""The lifespan owns every resource: engine, HTTP clients, storage, provider, the sandbox, the loops.

`open_gateway(settings)` builds them all and yields a typed `Gateway`; the FastAPI lifespan wraps it, and
tools (tests, the worker process, benchmarks) can use it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import logsafety
from app.config import Settings, split_secrets
from app.db.budget import DatabaseBudgets
from app.db.engine import create_engine, session_factory
from app.jobs.feed import ChangeFeed
from app.jobs.fetch import ImageFetcher, fetch_client
from app.jobs.images import ImageChecker, ImageLimits
from app.jobs.poller import JobPoller, PollerConfig, make_worker_id
from app.jobs.presenter import Presenter
from app.jobs.service import JobService, ServiceConfig
from app.jobs.transitions import Transitions
from app.providers.dashscope.capabilities import FAMILIES
from app.providers.dashscope.client import DashScopeClient
from app.providers.dashscope.ratelimit import UpstreamLimiter, account_scope
from app.providers.sandbox.config import SandboxConfig
from app.providers.sandbox.server import SandboxServer
from app.storage.base import Storage
from app.storage.factory import open_storage
from app.storage.space import StorageSpace
from app.tenants.auth import Authenticator
from app.tenants.keys import ConfiguredKey, KeyProblem, parse_configured_keys
from app.tenants.quotas import QuotaLimits
from app.webhooks.dispatcher import Dispatcher, DispatcherConfig
from app.webhooks.outbox import WebhookOutbox, WebhookTarget
from app.webhooks.secrets import SecretSource
from app.webhooks.sender import WebhookSender
from app.webhooks.service import DeliveryService
from app.workers.runner import start_loops_of, stop_loops

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """Everything a request or a loop needs, built once per process."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    provider: DashScopeClient
    storage: Storage
    service: JobService
    poller: JobPoller
    presenter: Presenter
    feed: ChangeFeed
    dispatcher: Dispatcher
    deliveries: DeliveryService
    secrets: SecretSource
    auth: Authenticator
    space: StorageSpace
    sandbox: SandboxServer | None = None
    loops: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def _upstream_timeout(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(settings.upstream_read_timeout_s, connect=settings.upstream_connect_timeout_s)


@contextlib.asynccontextmanager
async def open_gateway(settings: Settings, *, start_loops: bool | None = None) -> AsyncIterator[Gateway]:
    engine = create_engine(
        settings.database_url, pool_size=settings.database_pool_size, echo=settings.database_echo
    )
    sessions = session_factory(engine)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)

        sandbox: SandboxServer | None = None
        if settings.sandbox_enabled:
            sandbox = SandboxServer(SandboxConfig.from_settings(settings))
            await sandbox.start()
            stack.push_async_callback(sandbox.stop)
            base_url, api_key = sandbox.base_url, settings.sandbox_api_key
            log.warning("no DashScope key configured: using the built-in sandbox at %s", base_url)
        else:
            key = settings.upstream_key
            if key is None:
                raise RuntimeError("DASHSCOPE_SANDBOX=false needs DASHSCOPE_API_KEY")
            base_url, api_key = settings.dashscope_base_url, SecretStr(key.get_secret_value())

        upstream_http = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=_upstream_timeout(settings),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
                follow_redirects=False,
            )
        )
        download_http = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=httpx.Timeout(
                    settings.download_timeout_s, connect=settings.upstream_connect_timeout_s
                ),
                follow_redirects=True,
            )
        )
        # Client-given image URLs: no keep-alive, no redirects, no cookies (see app/jobs/fetch.py).
        fetch_http = await stack.enter_async_context(fetch_client(settings.reference_fetch_timeout_s))
        provider = DashScopeClient(
            upstream_http,
            base_url=base_url,
            api_key=api_key,
            limiter=UpstreamLimiter(
                settings.upstream_query_qps,
                settings.upstream_submit_rps,
                store=DatabaseBudgets(sessions),
                scope=account_scope(base_url, api_key.get_secret_value()),
            ),
        )
        storage = await stack.enter_async_context(open_storage(settings))
        space = StorageSpace(storage.staging_dir, settings.storage_min_free_bytes)
        presenter = Presenter(settings.public_base_url)
        feed = ChangeFeed()
        default_target = None
        if settings.webhook_default_url:
            default_target = WebhookTarget(
                settings.webhook_default_url, frozenset(settings.webhook_default_events)
            )
        transitions = Transitions(presenter, (WebhookOutbox(default_target),))
        worker_id = make_worker_id()
        poller = JobPoller(
            sessions,
            provider,
            storage,
            download_http,
            PollerConfig(
                poll_min_s=settings.poll_min_interval_s,
                poll_max_s=settings.poll_max_interval_s,
                lease_s=settings.lease_s,
                concurrency=settings.worker_concurrency,
                batch_size=settings.worker_batch_size,
                reconcile_grace_s=settings.reconcile_grace_s,
                max_inflight={f: settings.upstream_max_inflight.get(f, 2) for f in FAMILIES},
                max_video_bytes=settings.max_video_bytes,
                download_timeout_s=settings.download_timeout_s,
            ),
            transitions=transitions,
            feed=feed,
            space=space,
            worker_id=worker_id,
        )
        # Reference images are decoded in a thread pool of their own, off the event loop (jobs/images.py).
        images = ImageChecker(
            ImageLimits(
                min_side=settings.image_min_side_px,
                max_side=settings.image_max_side_px,
                max_bytes=settings.image_max_bytes,
            ),
            concurrency=settings.image_check_concurrency,
            timeout_s=settings.image_check_timeout_s,
        )
        stack.callback(images.close)
        service = JobService(
            sessions,
            provider,
            ServiceConfig(
                job_deadline_s=settings.job_deadline_s,
                allow_private_urls=settings.allow_private_urls,
                change_poll_interval_s=settings.change_poll_interval_s,
                idempotency_ttl_s=settings.idempotency_ttl_s,
                result_cache=settings.result_cache,
            ),
            transitions=transitions,
            feed=feed,
            fetcher=ImageFetcher(
                fetch_http,
                allow_private=settings.allow_private_urls,
                timeout_s=settings.reference_fetch_timeout_s,
                max_bytes=settings.image_max_bytes,
            ),
            images=images,
            storage=storage,
            on_created=poller.wake,
        )
        secrets = SecretSource(sessions, settings.webhook_secret)
        dispatcher = Dispatcher(
            sessions,
            WebhookSender(),
            secrets,
            DispatcherConfig(
                schedule=tuple(settings.webhook_retry_schedule),
                timeout_s=settings.webhook_timeout_s,
                concurrency=settings.webhook_concurrency,
                endpoint_concurrency=settings.webhook_endpoint_concurrency,
                lease_s=settings.lease_s,
                allow_private=settings.allow_private_urls,
                idle_max_s=settings.change_poll_interval_s,
            ),
            worker_id=worker_id,
        )
        feed.subscribe(dispatcher.wake)  # a status change may have queued deliveries
        deliveries = DeliveryService(sessions, on_scheduled=dispatcher.wake)
        auth = Authenticator(
            sessions,
            configured_keys(settings),
            QuotaLimits(
                max_active_jobs=settings.quota_max_active_jobs,
                submits_per_minute=settings.quota_submits_per_minute,
                video_seconds_per_day=settings.quota_video_seconds_per_day,
            ),
            disabled=settings.auth_disabled,
            cache_ttl_s=settings.auth_cache_ttl_s,
        )
        gateway = Gateway(
            settings=settings,
            engine=engine,
            sessions=sessions,
            provider=provider,
            storage=storage,
            service=service,
            poller=poller,
            presenter=presenter,
            feed=feed,
            dispatcher=dispatcher,
            deliveries=deliveries,
            secrets=secrets,
            auth=auth,
            space=space,
            sandbox=sandbox,
        )
        if settings.workers_enabled if start_loops is None else start_loops:
            stack.push_async_callback(stop_loops, gateway)
            start_loops_of(gateway)
        yield gateway


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Gateway]]:
    settings: Settings = app.state.settings
    logsafety.install(secret_values(settings))
    async with open_gateway(settings) as gateway:
        await check_client_auth(gateway)
        app.state.gateway = gateway  # for tools and tests that hold the app
        yield {"gateway": gateway}


def configured_keys(settings: Settings) -> list[ConfiguredKey]:
    entries: list[ConfiguredKey] = []
    for value, admin, variable in (
        (settings.gateway_api_keys, False, "GATEWAY_API_KEYS"),
        (settings.gateway_admin_keys, True, "GATEWAY_ADMIN_KEYS"),
    ):
        if value is not None:
            entries += parse_configured_keys(value.get_secret_value(), admin=admin, variable=variable)
    if len({e.name for e in entries}) != len(entries):
        raise KeyProblem("GATEWAY_API_KEYS and GATEWAY_ADMIN_KEYS share a name")
    return entries


async def check_client_auth(gateway: Gateway) -> None:
    """No open doors by accident: without client keys the API serves anyone, which is only allowed
    against the sandbox (loudly) or when AUTH_DISABLED=true says it is meant."""
    settings, auth = gateway.settings, gateway.auth
    if auth.disabled:
        log.warning("AUTH_DISABLED=true: client authentication is OFF; anyone who reaches the API can spend")
        return
    if await auth.enabled():
        log.info("client authentication on (%d configured keys, more in the database)", auth.configured_count)
        return
    if not settings.sandbox_enabled:
        raise RuntimeError(
            "no client API keys: refusing to serve the real DashScope key to anyone who can connect. Set "
            "GATEWAY_API_KEYS=name:key (or run `wan-gateway keys create NAME`), or AUTH_DISABLED=true if "
            "the API is protected some other way"
        )
    log.warning(
        "client authentication is OFF (sandbox mode, no API keys): anyone who reaches this port can "
        "submit jobs. It turns on as soon as a key exists: GATEWAY_API_KEYS=name:key or "
        "`wan-gateway keys create NAME`"
    )


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, for the log redactor."""
    values = [settings.sandbox_api_key.get_secret_value()]
    if settings.upstream_key is not None:
        values.append(settings.upstream_key.get_secret_value())
    if settings.webhook_secret is not None:
        values += split_secrets(settings.webhook_secret.get_secret_value())
    for configured in (settings.gateway_api_keys, settings.gateway_admin_keys):
        if configured is not None:
            entries = configured.get_secret_value().replace("\n", ",").split(",")
            values += [entry.partition(":")[2].strip() for entry in entries]
    return values
