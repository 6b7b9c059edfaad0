"""FastAPI dependencies: each endpoint takes the few resources it uses, one typed dependency each.

The lifespan (app/lifespan.py) puts one immutable `Resources` into the ASGI state; nothing here knows how
it was built, so the HTTP edge does not depend on the composition root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request

from app.jobs.feed import ChangeFeed
from app.jobs.presenter import Presenter
from app.jobs.service import JobService
from app.links import LinkSigner
from app.ops.metrics import Metrics
from app.ops.readiness import Readiness
from app.storage.base import Storage
from app.storage.renditions import Renditions
from app.tenants.auth import Authenticator
from app.webhooks.service import DeliveryService

#: The key of `Resources` in the ASGI state the lifespan yields.
STATE_KEY = "resources"


@dataclass(frozen=True)
class StreamTimings:
    """How event streams pace themselves (SSE_KEEPALIVE_S, CHANGE_POLL_INTERVAL_S,
    SSE_PROGRESS_INTERVAL_S)."""

    keepalive_s: float
    recheck_s: float
    #: The least time between two `job.progress` events of a stream.
    progress_s: float


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What endpoints may depend on, built once per process by the lifespan."""

    jobs: JobService
    presenter: Presenter
    authenticator: Authenticator
    storage: Storage
    renditions: Renditions
    deliveries: DeliveryService
    feed: ChangeFeed
    streams: StreamTimings
    readiness: Readiness
    metrics: Metrics
    links: LinkSigner


def _resources(request: Request) -> Resources:
    return cast(Resources, getattr(request.state, STATE_KEY))


# The dependencies are coroutines: FastAPI runs a plain `def` dependency in the thread pool, a thread hop
# per dependency per request for what is an attribute read.
async def resources(request: Request) -> Resources:
    return _resources(request)


async def get_jobs(request: Request) -> JobService:
    return _resources(request).jobs


async def get_presenter(request: Request) -> Presenter:
    return _resources(request).presenter


async def get_authenticator(request: Request) -> Authenticator:
    return _resources(request).authenticator


async def get_storage(request: Request) -> Storage:
    return _resources(request).storage


async def get_renditions(request: Request) -> Renditions:
    return _resources(request).renditions


async def get_deliveries(request: Request) -> DeliveryService:
    return _resources(request).deliveries


async def get_feed(request: Request) -> ChangeFeed:
    return _resources(request).feed


async def get_streams(request: Request) -> StreamTimings:
    return _resources(request).streams


async def get_readiness(request: Request) -> Readiness:
    return _resources(request).readiness


async def get_metrics(request: Request) -> Metrics:
    return _resources(request).metrics


async def get_links(request: Request) -> LinkSigner:
    return _resources(request).links


JobsDep = Annotated[JobService, Depends(get_jobs)]
PresenterDep = Annotated[Presenter, Depends(get_presenter)]
StorageDep = Annotated[Storage, Depends(get_storage)]
RenditionsDep = Annotated[Renditions, Depends(get_renditions)]
DeliveriesDep = Annotated[DeliveryService, Depends(get_deliveries)]
FeedDep = Annotated[ChangeFeed, Depends(get_feed)]
StreamsDep = Annotated[StreamTimings, Depends(get_streams)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
LinksDep = Annotated[LinkSigner, Depends(get_links)]
