"""The webhook dispatcher: claim due deliveries with a lease, sign, POST, record, schedule the retry.

Outcomes: 2xx delivered; 410 Gone stops this delivery and marks the endpoint gone (nothing more goes
there until a job names it again); 429/503 wait at least their Retry-After; anything else (timeouts,
errors, 3xx — redirects are not followed) retries on WEBHOOK_RETRY_SCHEDULE with jitter until the
schedule runs out, then the delivery is marked failed — never dropped. A target that resolves to a
refused address fails at once. Every attempt is recorded.

Fair across endpoints: the claim takes turns between origins (scheme, host, port) and never lets one
origin hold more than `endpoint_concurrency` deliveries in flight across all workers, so a slow or
hanging receiver ties up at most that many of the dispatchers' slots while everyone else's go out
(`repository.claim_due`, `turns.py`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import logcontext
from app.db.base import utcnow
from app.jobs.models import Job, JobEvent
from app.loops import ClaimLoop
from app.netguard import Resolver, UnsafeURL, vet_url
from app.statuses import DeliveryStatus
from app.telemetry import metrics, tracing
from app.webhooks import payloads, repository, signing
from app.webhooks.models import WebhookDelivery
from app.webhooks.secrets import SecretSource
from app.webhooks.sender import SendResult, WebhookSender

log = logging.getLogger(__name__)


def _outcome(result: SendResult) -> str:
    """The `outcome` label of an attempt: `ok`, the status class (410 and 429 apart), or why no answer."""
    status = result.status_code
    if status is None:
        return "timeout" if result.timed_out else "network"
    if status == 410:
        return "http_410"
    return metrics.http_outcome(status)


#: Up to this fraction is added to each scheduled delay, so retries of many deliveries spread out.
JITTER = 0.10


@dataclass(frozen=True)
class DispatcherConfig:
    """Built from Settings by app/wiring.py; no defaults of settings here, so each is written once."""

    schedule: Sequence[float]
    timeout_s: float
    concurrency: int
    #: Deliveries in flight to one origin at most, across every worker (WEBHOOK_ENDPOINT_CONCURRENCY).
    endpoint_concurrency: int
    lease_s: float
    allow_private: bool
    idle_max_s: float
    batch_size: int = 32  # due deliveries claimed per turn (not a setting)


class Dispatcher(ClaimLoop[WebhookDelivery]):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: WebhookSender,
        secrets: SecretSource,
        config: DispatcherConfig,
        *,
        worker_id: str,
        resolver: Resolver | None = None,
    ) -> None:
        super().__init__(
            name="webhook dispatcher",
            concurrency=config.concurrency,
            batch_size=config.batch_size,
            idle_max_s=config.idle_max_s,
        )
        self._sessions = sessions
        self._sender = sender
        self._secrets = secrets
        self._config = config
        self.worker_id = worker_id
        self._resolver = resolver

    async def claim(self, limit: int) -> list[WebhookDelivery]:
        now = utcnow()
        # A send is bounded by its timeout, so the lease only has to outlast that (no renewal needed).
        lease_until = now + timedelta(seconds=max(self._config.lease_s, self._config.timeout_s + 5))
        async with self._sessions.begin() as session:
            return await repository.claim_due(
                session, limit, self.worker_id, now, lease_until, self._config.endpoint_concurrency
            )

    async def next_due_at(self) -> datetime | None:
        async with self._sessions() as session:
            return await repository.next_due_at(session, utcnow())

    async def handle(self, delivery: WebhookDelivery) -> None:
        traceparent = None
        if tracing.enabled():  # the job's trace: one more read, only when tracing is on
            async with self._sessions() as session:
                traceparent = await session.scalar(select(Job.traceparent).where(Job.id == delivery.job_id))
        # Every line of the delivery names it and its job (logcontext), as the poller's lines do.
        with (
            tracing.job_span(
                "wan.webhook.deliver", delivery.job_id, traceparent, attempt=delivery.attempt_count + 1
            ),
            logcontext.bind(delivery_id=delivery.id, job_id=delivery.job_id),
        ):
            await self._deliver(delivery)

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        async with self._sessions() as session:
            event = await session.get(JobEvent, delivery.event_id)
            gone = await repository.is_gone(session, delivery.url)
            ids = (
                await session.execute(
                    select(Job.owner, Job.task_id, Job.upstream).where(Job.id == delivery.job_id)
                )
            ).first()
        if ids is not None:
            owner, task_id, upstream = ids
            logcontext.update(
                tenant=owner,
                upstream_task_id=task_id,
                upstream_request_id=(upstream or {}).get("request_id"),
            )
        if event is None:  # the job was deleted
            await self._finish(
                delivery, None, status=DeliveryStatus.FAILED, last_error="the event no longer exists"
            )
            return
        if gone:
            await self._finish(
                delivery,
                None,
                status=DeliveryStatus.FAILED,
                last_error="the endpoint answered 410 Gone earlier; not sent",
            )
            return
        try:
            target = await vet_url(
                delivery.url, allow_private=self._config.allow_private, resolver=self._resolver
            )
        except UnsafeURL as exc:
            refused = SendResult(None, 0, f"refused: {exc.reason}", None)
            await self._finish(
                delivery, refused, status=DeliveryStatus.FAILED, last_error=refused.error, outcome="refused"
            )
            return
        text = payloads.body(event.type, event.created_at, event.data)
        now = utcnow()
        headers = signing.headers(await self._secrets.get(), delivery.id, now, text)
        result = await self._sender.send(target, headers, text, self._config.timeout_s)
        await self._record(delivery, result)

    async def _record(self, delivery: WebhookDelivery, result: SendResult) -> None:
        answer = f"HTTP {result.status_code}" if result.status_code is not None else result.error
        log.log(
            logging.INFO if result.ok else logging.WARNING,
            "webhook delivery %s (attempt %d) to %s: %s in %d ms",
            delivery.id,
            delivery.attempt_count + 1,
            delivery.origin,
            answer,
            result.latency_ms,
        )
        common: dict[str, Any] = {
            "attempt_count": delivery.attempt_count + 1,
            "last_status_code": result.status_code,
        }
        if result.ok:
            await self._finish(delivery, result, status=DeliveryStatus.SUCCEEDED, last_error=None, **common)
            return
        if result.status_code == 410:
            await self._finish(
                delivery,
                result,
                status=DeliveryStatus.FAILED,
                last_error="410 Gone: the endpoint is retired",
                gone=True,
                **common,
            )
            log.warning("webhook endpoint answered 410 Gone; no more deliveries go there: %s", delivery.url)
            return
        position = delivery.schedule_index + 1
        if position >= len(self._config.schedule):
            await self._finish(
                delivery,
                result,
                status=DeliveryStatus.FAILED,
                last_error=f"gave up after the retry schedule: {result.error}",
                **common,
            )
            return
        delay = self._config.schedule[position] * (1 + random.uniform(0, JITTER))
        delay = max(delay, result.retry_after or 0.0)
        await self._finish(
            delivery,
            result,
            status=DeliveryStatus.PENDING,
            schedule_index=position,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
            last_error=result.error,
            **common,
        )

    async def _finish(
        self,
        delivery: WebhookDelivery,
        result: SendResult | None,
        *,
        gone: bool = False,
        outcome: str | None = None,
        **values: Any,
    ) -> None:
        """Record the attempt (if one was made) and the delivery's new state in one transaction; the
        attempt is counted (`wan_gateway_webhook_attempts_total`) once that has committed."""
        if values.get("status") in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
            values.setdefault("finished_at", utcnow())
            values.setdefault("next_attempt_at", None)
        async with self._sessions.begin() as session:
            if result is not None:  # every attempt is kept, whatever happens to the delivery meanwhile
                await repository.add_attempt(
                    session,
                    delivery_id=delivery.id,
                    attempted_at=utcnow() - timedelta(milliseconds=result.latency_ms),
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    error=result.error,
                    response_body=result.response_body,
                )
                metrics.after_commit(
                    session, lambda: metrics.WEBHOOK_ATTEMPTS.labels(outcome or _outcome(result)).inc()
                )
            if not await repository.finish_attempt(session, delivery, **values):
                # e.g. a manual redelivery reset it meanwhile: that newer state stands
                log.info("delivery %s changed under %s; keeping its newer state", delivery.id, self.worker_id)
                return
            if gone:
                await repository.mark_gone(session, delivery.url, delivery.id)
