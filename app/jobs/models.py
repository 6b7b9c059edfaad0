"""The `jobs` table: one row per video.generate job, which is also the work queue (architecture §1)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, JSONDoc, StorableString, StorableText, StrEnumColumn, utcnow
from app.db.leases import Leased
from app.jobs.states import JobStatus


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def plausible_id(value: str) -> bool:
    """Could `value` be one of our ids (`job_…`, `msg_…`)? Anything else is "not found" without a query:
    PostgreSQL refuses text holding NUL outright, so garbage must not reach it."""
    return _ID.fullmatch(value) is not None


class Job(Leased, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Claims: due rows by status.
        Index("ix_jobs_status_next_attempt_at", "status", "next_attempt_at"),
        # Listing, newest first.
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_limit_group_status", "limit_group", "status"),
        # Fair submit order: when a tenant last got a slot of a family (one probe per waiting tenant).
        Index("ix_jobs_limit_group_owner_submitted_at", "limit_group", "owner", "submitted_at"),
        # A tenant's page, newest first, read in index order; quota admission's time ranges.
        Index("ix_jobs_owner_created_at_id", "owner", "created_at", "id"),
        # Result reuse: identical seeded requests of a tenant (jobs/fingerprint.py), and followers.
        Index("ix_jobs_cache_key_owner", "cache_key", "owner"),
        Index("ix_jobs_source_job_id", "source_job_id"),
        # Every job pointing at one stored object (reuse shares it): removed only with the last of them.
        Index("ix_jobs_storage_key", "storage_key"),
        # The retention loop: old succeeded jobs, oldest first.
        Index("ix_jobs_status_finished_at", "status", "finished_at"),
        # Budgets: what a tenant's jobs spent since the start of a period (jobs/admission.py).
        Index("ix_jobs_owner_finished_at", "owner", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_job_id)
    owner: Mapped[str | None] = mapped_column(String(64))
    #: The name of the key that made the job (`wan-gateway keys list`, or its GATEWAY_API_KEYS name; never
    #: the key or its hash), for `GET /v1/usage?group_by=key`. Null: authentication off, or made before
    #: revision 0015.
    api_key: Mapped[str | None] = mapped_column(String(64))
    # The Idempotency-Key the job was created with, for information (keys live in `idempotency_keys`:
    # they expire and may be used again, so this column is not unique).
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # sha256 of what determines the video (jobs/fingerprint.py); null when it cannot be known (no seed,
    # an image given by URL without its bytes).
    cache_key: Mapped[str | None] = mapped_column(String(64))
    # A cached job: the job whose stored video it reuses. A follower: the identical running job it waits
    # for (it is never submitted itself while this is set). Null for every job that runs upstream.
    source_job_id: Mapped[str | None] = mapped_column(String(40))

    status: Mapped[JobStatus] = mapped_column(StrEnumColumn(JobStatus, 16))

    model: Mapped[str] = mapped_column(String(64))
    limit_group: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(JSONDoc)  # normalized echo, images described
    upstream_body: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)  # what is sent (data: URIs)
    warnings: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDoc)

    #: Seconds of video this job may bill (0 for a reused video): the per-day quota sums it.
    video_seconds: Mapped[float] = mapped_column(Float, default=0.0)

    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_events: Mapped[list[str] | None] = mapped_column(JSONDoc)

    # Upstream task. Unique, so two jobs can never adopt the same task during reconciliation.
    task_id: Mapped[str | None] = mapped_column(StorableString(64), unique=True)
    upstream_status: Mapped[str | None] = mapped_column(String(16))
    upstream: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)  # request id, times, prompts, usage
    video_source_url: Mapped[str | None] = mapped_column(StorableText)
    video_source_expires_at: Mapped[datetime | None]
    # How far the copy of the finished video has got (bytes received, and declared by upstream; NULL: not
    # started, or undeclared). Written at most about once a second by the copying worker, without a
    # version bump (it is no state change), so every API process can show `progress` while `storing`.
    copy_bytes: Mapped[int | None] = mapped_column(BigInteger)
    copy_total_bytes: Mapped[int | None] = mapped_column(BigInteger)

    # Set (and committed) before a create call; cleared once the outcome is known. A row with this set
    # and no task_id may have created a billable task: it is reconciled, never blindly resubmitted.
    submit_started_at: Mapped[datetime | None]
    # The upstream account (DASHSCOPE_ACCOUNTS name) the submit claim placed the job on; every later call
    # for its task goes there. NULL: the single default account.
    account: Mapped[str | None] = mapped_column(String(64), default=None)
    # The W3C `traceparent` of the request that submitted the job, when tracing is on: the worker's spans
    # about the job (upstream calls, the copy, webhooks) join that trace (app/telemetry/tracing.py).
    traceparent: Mapped[str | None] = mapped_column(String(64), default=None)
    # An ambiguous create: when it was sent and answered, its request id, the task-list passes made.
    create_attempt: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    submit_attempts: Mapped[int] = mapped_column(Integer, default=0)
    poll_count: Mapped[int] = mapped_column(Integer, default=0)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)  # consecutive transient failures
    # The latest transient problem, for operators (it may quote upstream: hence storable text).
    last_error: Mapped[str | None] = mapped_column(StorableText)
    # The same problem as clients may see it, `{code, message}` in our words (no paths): `Job.retry`.
    retry_reason: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)

    next_attempt_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime]

    storage_key: Mapped[str | None] = mapped_column(String(255))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    #: `job.cost` without its version (app/billing/cost.py `Cost`): the estimate until the job ends, then
    #: what DashScope bills (0 unless it succeeded upstream itself). Null: the price table has no row.
    cost: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    #: The price table's version that priced `cost`.
    price_version: Mapped[str | None] = mapped_column(String(64))
    #: `cost.amount` in millionths of its currency, for SQL sums (budgets): while the job is unfinished its
    #: reservation, once finished what it spent. Null with `cost`.
    cost_micros: Mapped[int | None] = mapped_column(BigInteger)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: `DELETE /v1/jobs/{id}`: the row stays (audit, its task id, its Idempotency-Key) but no read shows it.
    deleted_at: Mapped[datetime | None]
    #: The stored video (and its renditions) was removed by STORAGE_RETENTION_S; the job stays.
    expired_at: Mapped[datetime | None]

    @property
    def cached(self) -> bool:
        """The video is another job's, reused (no upstream task of its own)."""
        return self.source_job_id is not None and self.status == JobStatus.SUCCEEDED


#: An autoincrementing 64-bit key (SQLite only autoincrements a plain INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer, "sqlite")


class JobEvent(Base):
    """Append-only: one row per status change, written in the same transaction as the change.

    The row id is the server-sent event id (`Last-Event-ID`); `data` is the job as GET returned it then.
    """

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))  # job.<status>
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def new_reservation_id() -> str:
    return "idk_" + secrets.token_hex(12)


class IdempotencyKey(Base):
    """One `Idempotency-Key` of a tenant: reserved before the job is written, then pointing at it.

    `tenant` is the job owner, or '' when there is none (auth off), so the unique key holds on every
    database (NULLs are distinct in a UNIQUE constraint). `fingerprint` is the sha256 of the canonical
    request. A row without `job_id` is a request still being written; past `expires_at` the key is free.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("tenant", "key", name="uq_idempotency_keys_tenant_key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_reservation_id)
    tenant: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
