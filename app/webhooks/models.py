"""Webhook tables: deliveries (one per event and endpoint, the `webhook-id`), their attempts, endpoints
that answered 410 Gone, and the signing secret the gateway generated when none was configured."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, validates

from app.db.base import Base, StorableText, StrEnumColumn, utcnow
from app.db.leases import Leased
from app.jobs.models import BigId
from app.statuses import DeliveryStatus
from app.webhooks.origins import origin_of


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


class WebhookDelivery(Leased, Base):
    """One event for one endpoint. Its id is the `webhook-id` header, the same on every retry."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_job_id", "job_id"),
        # The claim counts the deliveries in flight (leased) per origin: a handful of rows…
        Index("ix_webhook_deliveries_status_lease_expires_at", "status", "lease_expires_at"),
        # …groups the due ones by origin and takes the oldest of those that get a turn.
        Index("ix_webhook_deliveries_status_origin_next_attempt_at", "status", "origin", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_message_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("job_events.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    # The URL's origin (`origins.origin_of`), set with `url`: deliveries in flight are capped per origin
    # (WEBHOOK_ENDPOINT_CONCURRENCY) and the claim takes turns between origins.
    origin: Mapped[str] = mapped_column(String(2048))
    status: Mapped[DeliveryStatus] = mapped_column(StrEnumColumn(DeliveryStatus, 16))
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    # Position in WEBHOOK_RETRY_SCHEDULE; a manual redelivery starts the schedule again.
    schedule_index: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(StorableText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    @validates("url")
    def _set_origin(self, _: str, url: str) -> str:
        self.origin = origin_of(url)
        return url


class WebhookAttempt(Base):
    """Every try, kept: when, what came back (status, first 1 KB of body), how long it took, or the error."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id_id", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    # What the receiver answered may hold anything (NUL bytes, …): storable text (app/db/base.py).
    error: Mapped[str | None] = mapped_column(StorableText)
    response_body: Mapped[str | None] = mapped_column(StorableText)


class WebhookEndpoint(Base):
    """An endpoint that answered 410 Gone: nothing more is sent there until a job names it again."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    gone_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivery_id: Mapped[str | None] = mapped_column(String(40))


class WebhookSecret(Base):
    """The signing secret generated on first use when WEBHOOK_SECRET is not set (`wan-gateway
    webhook-secret` prints it)."""

    __tablename__ = "webhook_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
