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

from app.config import Settings
from app.db.budget import DatabaseBudgets
from app.db.engine import create_engine, session_factory
from app.jobs.feed import ChangeFeed
from app.jobs.images import ImageLimits
from app.jobs.outbox import Outbox, WebhookTarget
from app.jobs.poller import JobPoller, PollerConfig, make_worker_id
from app.jobs.presenter import Presenter
from app.jobs.service import JobService, ServiceConfig
from app.providers.dashscope.capabilities import FAMILIES
from app.providers.dashscope.client import DashScopeClient
from app.providers.dashscope.ratelimit import UpstreamLimiter, account_scope
from app.providers.sandbox.config import SandboxConfig
from app.providers.sandbox.server import SandboxServer
from app.storage.base import Storage
from app.storage.factory import open_storage
from app.webhooks.dispatcher import Dispatcher, DispatcherConfig
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
        presenter = Presenter(settings.public_base_url)
        feed = ChangeFeed()
        default_target = None
        if settings.webhook_default_url:
            default_target = WebhookTarget(
                settings.webhook_default_url, frozenset(settings.webhook_default_events)
            )
        outbox = Outbox(presenter, default_target)
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
            outbox=outbox,
            feed=feed,
            worker_id=worker_id,
            dialect=engine.dialect.name,
        )
        service = JobService(
            sessions,
            provider,
            ServiceConfig(
                job_deadline_s=settings.job_deadline_s,
                image_limits=ImageLimits(
                    min_side=settings.image_min_side_px,
                    max_side=settings.image_max_side_px,
                    max_bytes=settings.image_max_bytes,
                ),
                allow_private_urls=settings.allow_private_urls,
                change_poll_interval_s=settings.change_poll_interval_s,
                idempotency_ttl_s=settings.idempotency_ttl_s,
                result_cache=settings.result_cache,
            ),
            outbox=outbox,
            feed=feed,
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
                lease_s=settings.lease_s,
                allow_private=settings.allow_private_urls,
                idle_max_s=settings.change_poll_interval_s,
            ),
            worker_id=worker_id,
        )
        feed.subscribe(dispatcher.wake)  # a status change may have queued deliveries
        deliveries = DeliveryService(sessions, on_scheduled=dispatcher.wake)
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
            sandbox=sandbox,
        )
        if settings.workers_enabled if start_loops is None else start_loops:
            stack.push_async_callback(stop_loops, gateway)
            start_loops_of(gateway)
        yield gateway


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Gateway]]:
    settings: Settings = app.state.settings
    async with open_gateway(settings) as gateway:
        app.state.gateway = gateway  # for tools and tests that hold the app
        yield {"gateway": gateway}
