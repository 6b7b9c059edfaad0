"""`wan-gateway worker` (= `python -m app.workers`): the job poller and webhook dispatcher without the API.

Any number of these (and of API processes with `WORKERS_ENABLED=false`) can share one Postgres and one
bucket: claims are leased rows, every write is compare-and-set, upstream limits are shared through the
database. SIGTERM/SIGINT stop claiming, finish work in hand for up to `SHUTDOWN_GRACE_S`, and exit; work
cut off keeps its lease, which lapses after `LEASE_S`, and another worker resumes it.

With `--health-port`, the process also serves `/healthz`, `/readyz` and `/metrics` (on 127.0.0.1 unless
`--health-host` says otherwise) for orchestrators' health checks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI

from app.api import health
from app.api.deps import STATE_KEY, Resources
from app.config import Settings
from app.lifespan import Gateway, open_gateway
from app.serving import EmbeddedServer, gateway_config
from app.startup import configure_logging, migrate, require_migrated
from app.workers import add_arguments

log = logging.getLogger(__name__)


def health_app(gateway: Gateway) -> FastAPI:
    """The ops endpoints of an already running gateway, for a worker's health port."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Resources]]:
        yield {STATE_KEY: gateway.resources()}

    app = FastAPI(
        title="wan-gateway worker", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.include_router(health.router)
    return app


def health_server(gateway: Gateway, settings: Settings, *, host: str, port: int) -> EmbeddedServer:
    """The health port's server, built as the API's (`app.serving`: the same request-head bounds). No
    access log: orchestrators probe every few seconds, and the lines would say nothing."""
    # Embedded: without signal handling of its own (the worker's handlers stop everything, this included).
    return EmbeddedServer(
        gateway_config(health_app(gateway), settings, host=host, port=port, access_log=False)
    )


async def run_worker(
    settings: Settings, *, health_host: str = "127.0.0.1", health_port: int | None = None
) -> None:
    if settings.sandbox_enabled:
        log.warning(
            "no DashScope key: this worker runs an embedded sandbox. Processes that should see the same "
            "tasks must share it: SANDBOX_STATE_PATH and SANDBOX_PORT alike (as docker-compose.yml does), "
            "or `wan-gateway sandbox` with DASHSCOPE_BASE_URL=http://host:port/api/v1 "
            "DASHSCOPE_API_KEY=sk-sandbox"
        )
    async with open_gateway(settings, start_loops=True) as gateway:
        loops = gateway.loops
        assert loops is not None  # start_loops=True
        event_loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            event_loop.add_signal_handler(sig, loops.request_stop)
        server: EmbeddedServer | None = None
        serving: asyncio.Task[None] | None = None
        if health_port is not None:
            server = health_server(gateway, settings, host=health_host, port=health_port)
            serving = asyncio.create_task(server.serve(), name="worker health server")
        log.info("worker %s running (poller and dispatcher)", gateway.poller.worker_id)
        await loops.stop_requested()
        log.info(
            "worker %s stopping: draining for up to %.0f s",
            gateway.poller.worker_id,
            settings.shutdown_grace_s,
        )
        if server is not None and serving is not None:
            server.request_exit()
            await serving
    log.info("worker stopped")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wan-gateway worker", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    run(Settings(), args)


def run(settings: Settings, args: argparse.Namespace) -> None:
    configure_logging(settings)
    if args.no_migrate:
        require_migrated(settings, "worker")
    else:
        migrate(settings)
    asyncio.run(run_worker(settings, health_host=args.health_host, health_port=args.health_port))
