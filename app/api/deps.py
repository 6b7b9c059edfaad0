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
from app.ops.metrics import Metrics
from app.ops.readiness import Readiness
from app.storage.base import Storage
from app.tenants.auth import Authenticator
from app.webhooks.service import DeliveryService

#: The key of `Resources` in the ASGI state the lifespan yields.
STATE_KEY = "resources"


@dataclass(frozen=True)
class StreamTimings:
    """How event streams pace themselves (SSE_KEEPALIVE_S, CHANGE_POLL_INTERVAL_S)."""

    keepalive_s: float
    recheck_s: float


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What endpoints may depend on, built once per process by the lifespan."""

    jobs: JobService
    presenter: Presenter
    authenticator: Authenticator
    storage: Storage
    deliveries: DeliveryService
    feed: ChangeFeed
    streams: StreamTimings
    readiness: Readiness
    metrics: Metrics


def resources(request: Request) -> Resources:
    return cast(Resources, getattr(request.state, STATE_KEY))


def get_jobs(request: Request) -> JobService:
    return resources(request).jobs


def get_presenter(request: Request) -> Presenter:
    return resources(request).presenter


def get_authenticator(request: Request) -> Authenticator:
    return resources(request).authenticator


def get_storage(request: Request) -> Storage:
    return resources(request).storage


def get_deliveries(request: Request) -> DeliveryService:
    return resources(request).deliveries


def get_feed(request: Request) -> ChangeFeed:
    return resources(request).feed


def get_streams(request: Request) -> StreamTimings:
    return resources(request).streams


def get_readiness(request: Request) -> Readiness:
    return resources(request).readiness


def get_metrics(request: Request) -> Metrics:
    return resources(request).metrics


JobsDep = Annotated[JobService, Depends(get_jobs)]
PresenterDep = Annotated[Presenter, Depends(get_presenter)]
StorageDep = Annotated[Storage, Depends(get_storage)]
DeliveriesDep = Annotated[DeliveryService, Depends(get_deliveries)]
FeedDep = Annotated[ChangeFeed, Depends(get_feed)]
StreamsDep = Annotated[StreamTimings, Depends(get_streams)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
