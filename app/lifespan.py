"""The lifespan owns every resource: engine, HTTP clients, storage, provider, the sandbox, the loops.

`open_gateway(settings)` builds them all and yields them as one immutable `Gateway`; the FastAPI lifespan
wraps it and hands the endpoints their `Resources` (app/api/deps.py), and tools (tests, the worker process,
benchmarks) use it directly. Each component gets its configuration from `app/wiring.py`; the background
loops are started and stopped by their `LoopRunner` (app/runner.py), which the gateway only holds.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import logsafety, tls, wiring
from app.api.deps import STATE_KEY, Resources
from app.compat.dashscope import routes as dashscope_routes
from app.compat.dashscope.uploads import UPLOAD_PATH, UploadStore
from app.config import Settings, UpstreamAccount
from app.db.account_states import DatabaseAccountStates
from app.db.budget import DatabaseBudgets
from app.db.engine import create_engine, read_session_factory, session_factory
from app.jobs.feed import ChangeFeed
from app.jobs.fetch import ImageFetcher, fetch_client
from app.jobs.images import ImageChecker
from app.jobs.poller import JobPoller, make_worker_id
from app.jobs.presenter import Presenter
from app.jobs.retention import RetentionLoop
from app.jobs.service import JobService
from app.jobs.transitions import Transitions
from app.links import LinkSigner, load_secret
from app.ops.metrics import Metrics
from app.ops.readiness import Heartbeat, Readiness
from app.providers.base import AccountPool, VideoProvider
from app.providers.dashscope.client import DashScopeClient
from app.providers.dashscope.ratelimit import UpstreamLimiter, account_scope
from app.providers.health import AccountHealth
from app.runner import LoopRunner
from app.sandbox.extra import require_extra
from app.storage.base import Storage
from app.storage.factory import open_storage
from app.storage.renditions import Renditions
from app.storage.space import StorageSpace
from app.telemetry import tracing
from app.tenants.auth import Authenticator
from app.tenants.keys import ConfiguredKey, keys_of_settings
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.outbox import WebhookOutbox
from app.webhooks.secrets import SecretSource
from app.webhooks.sender import WebhookSender
from app.webhooks.service import DeliveryService

if TYPE_CHECKING:
    from app.sandbox.server import SandboxServer

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Gateway:
    """Everything one process built, once. Immutable: what changes at run time lives inside the parts
    (the loops' tasks in `loops`, a cache in `auth`), never in this object."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    #: The first (or only) upstream account's client.
    provider: DashScopeClient
    #: Every upstream account jobs are placed on (the single one, name None, without DASHSCOPE_ACCOUNTS).
    accounts: AccountPool
    storage: Storage
    renditions: Renditions
    space: StorageSpace
    presenter: Presenter
    feed: ChangeFeed
    service: JobService
    poller: JobPoller
    dispatcher: Dispatcher
    #: STORAGE_RETENTION_S's loop; None when videos are kept forever.
    retention: RetentionLoop | None
    deliveries: DeliveryService
    secrets: SecretSource
    auth: Authenticator
    readiness: Readiness
    metrics: Metrics
    #: Signed, key-less download links (`/v1/links/…`): the facade's video_url, `result.signed_url`.
    links: LinkSigner
    #: The DashScope facade's temporary uploads (app/compat/dashscope/uploads.py).
    uploads: UploadStore
    #: The running poller and dispatcher; None when this process runs no loops (WORKERS_ENABLED=false).
    loops: LoopRunner | None
    #: The embedded DashScope emulator, when it is the upstream.
    sandbox: SandboxServer | None

    def resources(self) -> Resources:
        """What the endpoints may depend on (app/api/deps.py)."""
        return Resources(
            jobs=self.service,
            presenter=self.presenter,
            authenticator=self.auth,
            storage=self.storage,
            renditions=self.renditions,
            deliveries=self.deliveries,
            feed=self.feed,
            streams=wiring.stream_timings(self.settings),
            readiness=self.readiness,
            metrics=self.metrics,
            links=self.links,
        )


async def _open_accounts(
    settings: Settings, stack: contextlib.AsyncExitStack
) -> tuple[list[UpstreamAccount], SandboxServer | None]:
    """The pool's accounts (DASHSCOPE_ACCOUNTS, or in sandbox mode with SANDBOX_ACCOUNT_COUNT > 1 the
    sandbox's keys), or empty for the single account; and the embedded sandbox, when there is one."""
    accounts = settings.upstream_accounts
    if not settings.sandbox_enabled:
        if not accounts:
            return [], None
        return [
            UpstreamAccount(a.name, a.api_key, a.base_url or settings.dashscope_base_url, a.region)
            for a in accounts
        ], None
    base_url, _, sandbox = await _open_upstream(settings, stack)
    if not accounts and settings.sandbox.account_count > 1:
        assert sandbox is not None
        keys = sandbox.config.api_keys
        accounts = [UpstreamAccount(f"sandbox-{n}", SecretStr(key)) for n, key in enumerate(keys, start=1)]
    return [UpstreamAccount(a.name, a.api_key, a.base_url or base_url, a.region) for a in accounts], sandbox


async def _open_upstream(
    settings: Settings, stack: contextlib.AsyncExitStack
) -> tuple[str, SecretStr, SandboxServer | None]:
    """The upstream's base URL and key: DashScope's, or those of an embedded sandbox started here."""
    if not settings.sandbox_enabled:
        key = settings.upstream_key
        if key is None:
            raise RuntimeError("DASHSCOPE_SANDBOX=false needs DASHSCOPE_API_KEY")
        return settings.dashscope_base_url, SecretStr(key.get_secret_value()), None
    require_extra(
        "DASHSCOPE_SANDBOX=true asks for the built-in sandbox"
        if settings.dashscope_sandbox
        else "no DashScope key is configured (DASHSCOPE_API_KEY, or ~/.alibabacloud/credentials), so the "
        "gateway would use its built-in sandbox"
    )
    from app.sandbox.server import SandboxServer  # the sandbox extra: only when it is used

    sandbox = SandboxServer(wiring.sandbox_config(settings))
    await sandbox.start()
    stack.push_async_callback(sandbox.stop)
    log.warning("no DashScope key configured: using the built-in sandbox at %s", sandbox.base_url)
    return sandbox.base_url, settings.sandbox.api_key, sandbox


@contextlib.asynccontextmanager
async def open_gateway(settings: Settings, *, start_loops: bool | None = None) -> AsyncIterator[Gateway]:
    """Build every resource; run the loops if `start_loops` (default: WORKERS_ENABLED); close all on exit."""
    # A PRICE_TABLE_FILE that cannot be used stops the start here, before anything opens, naming its entry.
    prices = wiring.price_table(settings)
    engine = create_engine(
        settings.database_url, pool_size=settings.database_pool_size, echo=settings.database_echo
    )
    # Traces only with OTEL_EXPORTER_OTLP_ENDPOINT (telemetry/tracing.py); off, these are no-ops.
    tracing.enable(settings.otel_exporter_otlp_endpoint)
    tracing.instrument_engine(engine)
    sessions = session_factory(engine)
    reads = read_session_factory(engine)  # one-statement reads for clients: autocommit
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(tracing.flush)  # last: the spans of the shutdown included
        stack.push_async_callback(engine.dispose)
        pooled, sandbox = await _open_accounts(settings, stack)
        if pooled:
            base_url, api_key = pooled[0].base_url or "", pooled[0].api_key
        elif sandbox is not None:  # the single sandbox account: started by _open_accounts, not again
            base_url, api_key = sandbox.base_url, settings.sandbox.api_key
        else:
            base_url, api_key, sandbox = await _open_upstream(settings, stack)
        # Each account bills in its own region; a pool mixing currencies stops the start here.
        pricing = wiring.pricing(
            settings, base_url, prices, region=pooled[0].region if pooled else None, accounts=pooled
        )
        if len(pricing.regions) > 1:
            log.info(
                "the account pool spans regions %s (%s): each job is billed in its account's region, "
                "estimated in the priciest",
                ", ".join(pricing.regions),
                pricing.currency,
            )
        upstream_http = await stack.enter_async_context(
            tracing.instrument_client(
                httpx.AsyncClient(
                    timeout=wiring.upstream_timeout(settings),
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
                    follow_redirects=False,
                    verify=tls.client_context(),
                )
            )
        )
        download_http = await stack.enter_async_context(
            tracing.instrument_client(
                httpx.AsyncClient(
                    timeout=wiring.download_timeout(settings),
                    follow_redirects=True,
                    verify=tls.client_context(),
                )
            )
        )
        # Client-given image URLs: no keep-alive, no redirects, no cookies (see app/jobs/fetch.py).
        fetch_http = await stack.enter_async_context(fetch_client(settings.reference_fetch_timeout_s))

        def client(base_url: str, api_key: SecretStr) -> DashScopeClient:
            # Each account its own budgets (the scope names the account), shared across replicas.
            return DashScopeClient(
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

        provider = client(base_url, api_key)
        members: list[tuple[str | None, VideoProvider]] = [(None, provider)]
        if pooled:
            members = [(pooled[0].name, provider)]
            members += [(a.name, client(a.base_url or "", a.api_key)) for a in pooled[1:]]
            log.info("upstream account pool: %s", ", ".join(a.name for a in pooled))
        accounts = AccountPool(members)
        # Shared by every process through the database: a key refused anywhere leaves rotation everywhere.
        health = AccountHealth(
            accounts.names, retry_s=settings.upstream_account_retry_s, store=DatabaseAccountStates(sessions)
        )
        storage = await stack.enter_async_context(open_storage(settings))
        space = StorageSpace(storage.staging_dir, settings.storage_min_free_bytes)
        # The link key is read (or generated) once: every replica and restart signs alike (app/links.py).
        link_secret = await load_secret(sessions, settings.link_signing_secret)
        logsafety.install([link_secret])
        links = wiring.link_signer(settings, link_secret)
        presenter = Presenter(settings.public_base_url, links)
        feed = ChangeFeed()
        transitions = Transitions(
            presenter, (WebhookOutbox(wiring.default_webhook(settings)),), pricing=pricing
        )
        worker_id = make_worker_id()
        poller = JobPoller(
            sessions,
            provider,
            storage,
            download_http,
            wiring.poller_config(settings),
            transitions=transitions,
            feed=feed,
            space=space,
            worker_id=worker_id,
            accounts=accounts,
            health=health,
        )
        # Reference images are decoded in a thread pool of their own, off the event loop (jobs/images.py).
        images = ImageChecker(
            wiring.image_limits(settings),
            concurrency=settings.image_check_concurrency,
            timeout_s=settings.image_check_timeout_s,
        )
        stack.callback(images.close)
        service = JobService(
            sessions,
            provider,
            wiring.service_config(settings),
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
            reads=reads,
            accounts=accounts,
            health=health,
        )
        secrets = SecretSource(sessions, settings.webhook_secret)
        dispatcher = Dispatcher(
            sessions, WebhookSender(), secrets, wiring.dispatcher_config(settings), worker_id=worker_id
        )
        feed.subscribe(dispatcher.wake)  # a status change may have queued deliveries
        deliveries = DeliveryService(sessions, on_scheduled=dispatcher.wake)
        auth = Authenticator(
            reads,
            configured_keys(settings),
            wiring.quota_limits(settings),
            disabled=settings.auth_disabled,
            cache_ttl_s=settings.auth_cache_ttl_s,
        )
        retention_config = wiring.retention_config(settings)
        retention = (
            RetentionLoop(sessions, storage, retention_config, worker_id=worker_id)
            if retention_config is not None
            else None
        )
        loops = None
        if settings.workers_enabled if start_loops is None else start_loops:
            runner = LoopRunner(
                [poller, dispatcher, *([retention] if retention else [])],
                drain_grace_s=settings.shutdown_grace_s,
            )
            loops = await stack.enter_async_context(runner)  # stopped first on the way out
        watched: dict[str, Heartbeat] = {"job_poller": poller, "webhook_dispatcher": dispatcher}
        if retention is not None:
            watched[retention.name] = retention
        yield Gateway(
            settings=settings,
            engine=engine,
            sessions=sessions,
            provider=provider,
            accounts=accounts,
            storage=storage,
            renditions=Renditions(storage),
            space=space,
            presenter=presenter,
            feed=feed,
            service=service,
            poller=poller,
            dispatcher=dispatcher,
            retention=retention,
            deliveries=deliveries,
            secrets=secrets,
            auth=auth,
            readiness=Readiness(sessions, storage, space, loops=watched, runner=loops, accounts=health),
            metrics=Metrics(
                sessions, loops=list(watched.values()) if loops is not None else [], accounts=health
            ),
            links=links,
            uploads=UploadStore(
                sessions,
                upload_host=settings.public_base_url + UPLOAD_PATH,
                max_bytes=settings.image_max_bytes,
            ),
            loops=loops,
            sandbox=sandbox,
        )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Resources | UploadStore]]:
    settings: Settings = app.state.settings
    logsafety.install(settings.secret_values())
    async with open_gateway(settings) as gateway:
        await check_client_auth(gateway)
        app.state.gateway = gateway  # for tools and tests that hold the app
        yield {STATE_KEY: gateway.resources(), dashscope_routes.STATE_KEY: gateway.uploads}


def configured_keys(settings: Settings) -> list[ConfiguredKey]:
    return keys_of_settings(settings.gateway_api_keys, settings.gateway_admin_keys)


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
