"""SQL for jobs: inserts, reads, lease-based claims and compare-and-set writes. Never commits.

Only SQL: which writes a status change implies (its event, its deliveries, the followers it resolves) is
`transitions.py`'s business. Every write after a claim is `WHERE id = ? AND version = ?` and bumps
`version`, so a worker whose lease was taken over, or a job the API canceled meanwhile, simply stops being
written by the stale party.

Followers (queued jobs with `source_job_id`, waiting for an identical running job) are never claimed for
submission; the job they follow resolves them when it ends, in the transaction of its own status change.
"""

from __future__ import annotations

import base64
import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import (
    ColumnElement,
    Label,
    ScalarSelect,
    Select,
    Subquery,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, defer

from app.db import leases
from app.db.base import rowcount, utcnow
from app.db.leases import unleased
from app.db.locks import LockSpace, xact_lock
from app.jobs.models import Job, JobEvent, plausible_id
from app.jobs.pacing import task_kind
from app.jobs.states import ACTIVE, JobStatus

UPSTREAM_ACTIVE = (JobStatus.SUBMITTED, JobStatus.RUNNING)


async def insert(session: AsyncSession, job: Job) -> Job:
    session.add(job)
    await session.flush()
    return job


#: Columns a client is never shown (nor the API's writes on its behalf need): the body sent upstream (the
#: reference image as a data: URI, the bulk of the row; decoding it was most of a list page's time) and the
#: worker's bookkeeping. Reads for clients skip them; touching one on such a row raises rather than quietly
#: loading it.
_NOT_FOR_CLIENTS = (
    Job.upstream_body,
    Job.create_attempt,
    Job.last_error,
    Job.video_source_url,
    Job.video_source_expires_at,
    Job.idempotency_key,
    Job.cache_key,
    Job.deadline_at,
    Job.poll_count,
    Job.submit_attempts,
    Job.traceparent,
)
CLIENT_VIEW = tuple(defer(column, raiseload=True) for column in _NOT_FOR_CLIENTS)
#: Built once: its cache key is computed once, not per request as `session.get` with options does.
_GET_FOR_CLIENT = select(Job).options(*CLIENT_VIEW).where(Job.id == bindparam("job_id"))


async def get(session: AsyncSession, job_id: str, *, client_view: bool = False) -> Job | None:
    """The job; `client_view`: without the columns clients never see (`CLIENT_VIEW`)."""
    if client_view:
        return (await session.scalars(_GET_FOR_CLIENT, {"job_id": job_id})).first()
    return await session.get(Job, job_id)


async def get_many(session: AsyncSession, job_ids: Sequence[str]) -> list[Job]:
    """The jobs with these ids (those that exist), as clients see them (`CLIENT_VIEW`)."""
    if not job_ids:
        return []
    return list(
        (await session.scalars(select(Job).options(*CLIENT_VIEW).where(Job.id.in_(list(job_ids))))).all()
    )


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


#: Longer than any cursor encode_cursor writes (a 32-character ISO time, `|`, a ≤ 64-character id).
_CURSOR_MAX_CHARS = 160


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError("not a cursor …") on anything that is not a cursor this service issued.

    A cursor is opaque to clients but arrives from them, so it is checked to be exactly what
    `encode_cursor` writes: a UTC ISO time (`+00:00`), `|`, one of our job ids. A forged offset or date
    never reaches a conversion (`0001-01-01T00:00:00+14:00` overflows `astimezone`) or the database.
    """
    try:
        if len(cursor) > _CURSOR_MAX_CHARS:
            raise ValueError("too long")
        # binascii.Error (bad base64, non-ASCII) and UnicodeDecodeError are ValueErrors.
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, separator, job_id = raw.partition("|")
        if not separator or not job_id.startswith("job_") or not plausible_id(job_id):
            raise ValueError("no job id")
        when = datetime.fromisoformat(created)
        if when.utcoffset() != timedelta(0) or when.isoformat() != created:
            raise ValueError("not a time this service wrote")
    except ValueError as exc:
        raise ValueError(f"not a cursor issued by this service ({exc})") from None
    return when, job_id


class _Everyone(enum.Enum):
    EVERY_TENANT = "every tenant"


#: The scope of an admin key's reads on the native API: every tenant's jobs.
EVERY_TENANT: Final = _Everyone.EVERY_TENANT
#: Whose jobs a read sees: a tenant, None (the jobs made with authentication off), or every tenant.
Scope = str | None | Literal[_Everyone.EVERY_TENANT]


def owned_by(owner: Scope) -> ColumnElement[bool]:
    """The tenant's rows; None (auth off) is a scope of its own; EVERY_TENANT is every row."""
    if owner is EVERY_TENANT:
        return true()
    return Job.owner.is_(None) if owner is None else Job.owner == owner


def in_scope(job: Job, owner: Scope) -> bool:
    """`owned_by` for a row already read."""
    return owner is EVERY_TENANT or job.owner == owner


async def reusable_results(
    session: AsyncSession,
    owner: str | None,
    cache_key: str,
    *,
    exclude: Sequence[str] = (),
    finished_since: datetime | None = None,
    limit: int = 3,
) -> list[Job]:
    """The tenant's succeeded jobs with this cache key that produced their own video, newest first."""
    query = select(Job).where(
        owned_by(owner),
        Job.cache_key == cache_key,
        Job.status == JobStatus.SUCCEEDED,
        Job.source_job_id.is_(None),
        Job.storage_key.is_not(None),
        holds_object(),  # never a deleted job's video, nor an expired one
    )
    if exclude:
        query = query.where(Job.id.not_in(list(exclude)))
    if finished_since is not None:
        query = query.where(Job.finished_at >= finished_since)
    rows = await session.scalars(query.order_by(Job.finished_at.desc(), Job.id.desc()).limit(limit))
    return list(rows.all())


async def lock_cache_key(session: AsyncSession, owner: str | None, cache_key: str) -> None:
    """Serialize creates of identical requests of a tenant until commit, so two arriving together cannot
    both miss each other and both be submitted (Postgres; SQLite's write transactions are serialized)."""
    await xact_lock(session, LockSpace.RESULT_REUSE, f"{owner or ''}\0{cache_key}")


async def lock_stored_object(session: AsyncSession, storage_key: str) -> None:
    """Serialize, until commit, what decides the fate of one stored object (Postgres; SQLite's write
    transactions are serialized): a delete or the retention loop counting the jobs that still hold it,
    and a result reuse pointing a new job at it."""
    await xact_lock(session, LockSpace.STORED_OBJECT, storage_key)


def holds_object() -> ColumnElement[bool]:
    """A job whose stored video is still its own to show: not deleted, not expired."""
    return and_(Job.deleted_at.is_(None), Job.expired_at.is_(None))


async def object_holders(session: AsyncSession, storage_key: str) -> list[Job]:
    """Every job that still shows the stored object `storage_key` (result reuse shares one object)."""
    rows = await session.scalars(select(Job).where(Job.storage_key == storage_key, holds_object()))
    return list(rows.all())


async def holds_object_now(session: AsyncSession, job_id: str) -> bool:
    """Whether the job still shows its stored object (re-read: not deleted, not expired)."""
    found = await session.scalar(select(Job.id).where(Job.id == job_id, holds_object()))
    return found is not None


async def mark_deleted(session: AsyncSession, job: Job, now: datetime) -> bool:
    """Soft-delete `job` if it is still at its version: out of every read from now on. The body sent
    upstream (the reference image's bytes) goes; what identifies the job (its task id, its key) stays."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.version == job.version, Job.deleted_at.is_(None))
        .values(deleted_at=now, upstream_body=None, updated_at=now, version=job.version + 1)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def mark_expired(session: AsyncSession, storage_key: str, now: datetime) -> list[str]:
    """Every job still showing `storage_key` no longer does (its object is being removed); their ids."""
    holders = await object_holders(session, storage_key)
    if holders:
        await session.execute(
            update(Job)
            .where(Job.id.in_([j.id for j in holders]), holds_object())
            .values(expired_at=now, lease_owner=None, lease_expires_at=None, version=Job.version + 1)
            .execution_options(synchronize_session=False)
        )
    return [j.id for j in holders]


async def claim_expirable(
    session: AsyncSession, count: int, owner: str, now: datetime, cutoff: datetime, lease_until: datetime
) -> list[Job]:
    """Succeeded jobs finished before `cutoff` whose stored video is still shown, oldest first, leased."""
    if count <= 0:
        return []
    query = (
        select(Job.id, Job.version)
        .where(
            Job.status == JobStatus.SUCCEEDED,
            Job.finished_at < cutoff,
            Job.storage_key.is_not(None),
            holds_object(),
            unleased(Job, now),
        )
        .order_by(Job.finished_at)
        .limit(2 * count)
    )
    ranked = (await session.execute(query)).all()
    return await leases.claim(session, Job, ranked, count=count, owner=owner, now=now, until=lease_until)


async def lock_family(session: AsyncSession, limit_group: str) -> None:
    """Serialize slot accounting of a model family across replicas until commit (Postgres; SQLite's
    BEGIN IMMEDIATE already does). Families are locked in name order (`limit_groups_with_queued`)."""
    await xact_lock(session, LockSpace.UPSTREAM_SLOTS, limit_group)


async def running_original(session: AsyncSession, owner: str | None, cache_key: str) -> Job | None:
    """The tenant's oldest unfinished job with this cache key that runs on its own, locked (Postgres) so
    it cannot finish until the caller's transaction (which attaches a follower to it) commits. SQLite's
    write transactions are serialized already (BEGIN IMMEDIATE)."""
    rows = await session.scalars(
        select(Job)
        .where(
            owned_by(owner),
            Job.cache_key == cache_key,
            Job.source_job_id.is_(None),
            Job.status.in_(ACTIVE),
        )
        .order_by(Job.created_at, Job.id)
        .with_for_update()
    )
    return rows.first()


async def list_page(
    session: AsyncSession,
    *,
    owner: Scope,
    statuses: Sequence[str] | None,
    limit: int,
    cursor: tuple[datetime, str] | None,
    oldest_first: bool = False,
    model: str | None = None,
) -> Page:
    """Newest first (or oldest first); the cursor is the last row of the previous page. Rows as clients
    see them (`CLIENT_VIEW`)."""
    query = select(Job).options(*CLIENT_VIEW).where(owned_by(owner), Job.deleted_at.is_(None))
    if statuses:
        query = query.where(Job.status.in_(statuses))
    if model:
        query = query.where(Job.model == model)
    if cursor is not None:
        created, job_id = cursor
        if oldest_first:
            query = query.where(
                or_(Job.created_at > created, and_(Job.created_at == created, Job.id > job_id))
            )
        else:
            query = query.where(
                or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id))
            )
    order = (Job.created_at, Job.id) if oldest_first else (Job.created_at.desc(), Job.id.desc())
    rows = list((await session.scalars(query.order_by(*order).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(jobs=rows, next_cursor=encode_cursor(rows[-1]) if more and rows else None)


@dataclass(frozen=True)
class Search:
    """A filtered listing (DashScope's `GET /tasks` shape, for the compatible facade): jobs created in
    `[since, until)`, of a model, in some statuses, or one id; newest first, a page by offset."""

    owner: str | None
    since: datetime
    until: datetime
    statuses: Sequence[str] | None = None
    model: str | None = None
    job_id: str | None = None
    offset: int = 0
    limit: int = 10


async def search(session: AsyncSession, query: Search) -> tuple[list[Job], int]:
    """One page of `query` (rows as clients see them, `CLIENT_VIEW`) and how many rows match in all."""
    where = [owned_by(query.owner), Job.created_at >= query.since, Job.created_at < query.until]
    if query.statuses:
        where.append(Job.status.in_(query.statuses))
    if query.model:
        where.append(Job.model == query.model)
    if query.job_id:
        where.append(Job.id == query.job_id)
    total = await session.scalar(select(func.count()).select_from(Job).where(*where))
    rows = await session.scalars(
        select(Job)
        .options(*CLIENT_VIEW)
        .where(*where)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .offset(query.offset)
        .limit(query.limit)
    )
    return list(rows.all()), int(total or 0)


def _holds_slot() -> ColumnElement[bool]:
    """A task of the job is (or may be) PENDING/RUNNING upstream: from the submit claim (which sets
    `submit_started_at`) until upstream reports a terminal state (`storing` holds no slot)."""
    # Written as one IN list (not `active OR queued-and-started`) so SQLite searches (limit_group, status).
    return and_(
        Job.status.in_((JobStatus.QUEUED, *UPSTREAM_ACTIVE)),
        or_(Job.status != JobStatus.QUEUED, Job.submit_started_at.is_not(None)),
    )


def _awaits_submit(now: datetime) -> ColumnElement[bool]:
    """Queued, not sent (or released to be sent again), not following an identical job, due, and nobody
    holds it."""
    return and_(
        Job.status == JobStatus.QUEUED,
        Job.submit_started_at.is_(None),
        Job.source_job_id.is_(None),  # followers wait for the job they follow
        Job.next_attempt_at <= now,
        unleased(Job, now),
    )


async def upstream_slots_in_use(session: AsyncSession, limit_group: str, account: str | None = None) -> int:
    """Tasks of this family that are (or may be) PENDING/RUNNING upstream; on the named `account` of a
    pool (DASHSCOPE_ACCOUNTS), or all of them (the single default account: None)."""
    query = select(func.count()).where(Job.limit_group == limit_group, _holds_slot())
    if account is not None:
        query = query.where(Job.account == account)
    return int((await session.scalar(query)) or 0)


async def upstream_slots_by_owner(session: AsyncSession, limit_group: str) -> Counter[str | None]:
    """`upstream_slots_in_use` per tenant (owner; None: the jobs without one)."""
    # Counted here, not with GROUP BY owner: that tempts SQLite into walking the family by owner index.
    # The rows are few: the slot holders (the family's cap, plus any unresolved creates).
    query = select(Job.owner).where(Job.limit_group == limit_group, _holds_slot())
    return Counter((await session.scalars(query)).all())


async def limit_groups_with_queued(session: AsyncSession, now: datetime) -> list[str]:
    query = (
        select(Job.limit_group)
        .where(_awaits_submit(now))
        .distinct()
        .order_by(Job.limit_group)  # a fixed lock order across replicas (no advisory-lock deadlock)
    )
    return list((await session.scalars(query)).all())


def fair_submit_order(
    limit_group: str, count: int, now: datetime, slots_in_use: Mapping[str | None, int]
) -> Select[str, int]:
    """`(id, version)` of up to `2 * count` jobs of a family awaiting submit, in the order they should get
    slots.

    Fair share across tenants (a tenant is an owner; the jobs without one are one tenant): each slot goes
    to the tenant with the fewest slots of the family in use (`slots_in_use`, plus the ones this claim
    hands out); ties go to the tenant served least recently (never served first: otherwise, with one
    slot, the tenant whose job just freed it would always tie and win), then to the one whose oldest
    waiting job is oldest; FIFO within a tenant. As one sort key: a tenant's k-th waiting job
    (`ROW_NUMBER() OVER (PARTITION BY owner ORDER BY created_at, id)`; NULLs form one partition) plus its
    slots in use, then its latest `submitted_at` in the family, then `created_at`.

    Cost: one pass over the family's due queued rows and a sort of them for the window, then an index
    probe (`ix_jobs_limit_group_owner_submitted_at`) for each of the few rows left after `rank <= count`.
    No row locks here (Postgres refuses FOR UPDATE beside window functions): `claim_for_submit` locks the
    rows afterwards (`leases.claim`), hence the spare candidates.
    """
    waiting = (
        select(Job.id, Job.version, Job.owner, Job.created_at, _owner_rank())
        .where(Job.limit_group == limit_group, _awaits_submit(now))
        .subquery("waiting")
    )
    return (
        select(waiting.c.id, waiting.c.version)
        .where(waiting.c.rank <= count)  # no tenant gets more than `count` of this claim's slots
        .order_by(*_fair_key(waiting, limit_group, slots_in_use))
        .limit(2 * count)
    )


def _owner_rank() -> Label[int]:
    """A waiting job's place among its own tenant's waiting jobs (1: its oldest), FIFO."""
    return func.row_number().over(partition_by=Job.owner, order_by=(Job.created_at, Job.id)).label("rank")


def _fair_key(
    waiting: Subquery, limit_group: str, slots_in_use: Mapping[str | None, int]
) -> tuple[ColumnElement[Any], ...]:
    """The sort key of `fair_submit_order` over `waiting` (id, owner, created_at, rank): the claim and the
    queue positions clients see (`queue_positions`) order jobs alike."""
    past = aliased(Job, name="past")

    def latest_submit(same_owner: ColumnElement[bool]) -> ScalarSelect[datetime | None]:
        return (
            select(func.max(past.submitted_at))
            .where(past.limit_group == limit_group, same_owner)
            .scalar_subquery()
        )

    # Two index-friendly probes rather than IS NOT DISTINCT FROM (which Postgres cannot search by).
    served_at = case(
        (waiting.c.owner.is_(None), latest_submit(past.owner.is_(None))),
        else_=latest_submit(past.owner == waiting.c.owner),
    )
    return (
        waiting.c.rank + _per_owner(waiting.c.owner, slots_in_use),
        served_at.nulls_first(),
        waiting.c.created_at,
        waiting.c.id,
    )


def _waits_in_queue() -> ColumnElement[bool]:
    """Queued and not yet sent upstream, following no other job: what a queue position counts. Unlike
    `_awaits_submit`, a job waiting out a retry backoff or held by a lease still counts (it goes next
    once due)."""
    return and_(
        Job.status == JobStatus.QUEUED,
        Job.submit_started_at.is_(None),
        Job.source_job_id.is_(None),
    )


async def queue_positions(
    session: AsyncSession, limit_group: str, job_ids: Sequence[str] | None = None
) -> dict[str, int]:
    """1-based places in the family's queue, in the claim's fair order (`fair_submit_order`): 1 goes
    upstream next. Of `job_ids` (those still waiting), or of every waiting job (None). One query (plus the
    small count of slots in use per tenant): a window over the family's waiting rows.
    """
    if job_ids is not None and not job_ids:
        return {}
    in_use = await upstream_slots_by_owner(session, limit_group)
    waiting = (
        select(Job.id, Job.owner, Job.created_at, _owner_rank())
        .where(Job.limit_group == limit_group, _waits_in_queue())
        .subquery("waiting")
    )
    ordered = select(
        waiting.c.id,
        func.row_number().over(order_by=_fair_key(waiting, limit_group, in_use)).label("position"),
    ).subquery("ordered")
    query = select(ordered.c.id, ordered.c.position)
    if job_ids is not None:
        query = query.where(ordered.c.id.in_(list(job_ids)))
    rows = await session.execute(query)
    return {job_id: int(position) for job_id, position in rows.all()}


async def slot_holders(session: AsyncSession, limit_group: str) -> list[tuple[str, dict[str, Any], datetime]]:
    """`(model, request, since)` of the family's jobs holding an upstream slot (`_holds_slot`): since their
    submit (or the start of their create)."""
    rows = await session.execute(
        select(Job.model, Job.request, func.coalesce(Job.submitted_at, Job.submit_started_at)).where(
            Job.limit_group == limit_group, _holds_slot()
        )
    )
    return [(model, request or {}, since) for model, request, since in rows.all() if since is not None]


async def set_copy_progress(session: AsyncSession, job_id: str, received: int, declared: int | None) -> None:
    """Record how far a `storing` job's copy has got. No version bump: it is no state change, and the
    copying worker's compare-and-set that ends the copy must still match."""
    await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.STORING)
        .values(copy_bytes=received, copy_total_bytes=declared)
    )


def _per_owner(owner: ColumnElement[str | None], values: Mapping[str | None, int]) -> ColumnElement[int]:
    """`values[owner]`, 0 for an owner not in `values`, as SQL (a CASE over a handful of owners)."""
    whens = [(owner.is_(None) if key is None else owner == key, value) for key, value in values.items()]
    return case(*whens, else_=0) if whens else literal(0)


async def claim_for_submit(
    session: AsyncSession,
    limit_group: str,
    count: int,
    owner: str,
    now: datetime,
    lease_until: datetime,
    *,
    account: str | None = None,
) -> list[Job]:
    """Up to `count` jobs of a family awaiting submit, in fair order across tenants (`fair_submit_order`),
    leased to `owner` (the worker).

    The submit attempt is recorded in the same statement (`submit_started_at`): from here on the job
    holds an upstream slot, so a concurrent claimer counting slots cannot over-commit the family. The
    same statement binds the job to `account` (None: the single default account), whose slot it takes.
    """
    if count <= 0:
        return []
    in_use = await upstream_slots_by_owner(session, limit_group)
    ranked = (await session.execute(fair_submit_order(limit_group, count, now, in_use))).all()
    return await leases.claim(
        session,
        Job,
        ranked,
        count=count,
        owner=owner,
        now=now,
        until=lease_until,
        updated_at=now,
        submit_started_at=now,
        submit_attempts=Job.submit_attempts + 1,
        account=account,
    )


async def claim_due(
    session: AsyncSession, count: int, owner: str, now: datetime, lease_until: datetime
) -> list[Job]:
    """Due jobs that need upstream polling, a copy, reconciliation, or a deadline check, oldest due first."""
    if count <= 0:
        return []
    query = (
        select(Job.id, Job.version)
        .where(
            Job.next_attempt_at <= now,
            unleased(Job, now),
            or_(
                Job.status.in_((*UPSTREAM_ACTIVE, JobStatus.STORING)),
                # queued: an ambiguous create to reconcile, or a job past its deadline
                and_(
                    Job.status == JobStatus.QUEUED,
                    or_(Job.submit_started_at.is_not(None), Job.deadline_at <= now),
                ),
            ),
        )
        .order_by(Job.next_attempt_at)
        .limit(2 * count)  # spares: `leases.claim` skips rows another claimer locked meanwhile
    )
    ranked = (await session.execute(query)).all()
    return await leases.claim(
        session, Job, ranked, count=count, owner=owner, now=now, until=lease_until, updated_at=now
    )


async def cas_update(session: AsyncSession, job: Job, **values: Any) -> bool:
    """Write `values` iff the row is still at `job.version`, bumping it; on success `job` reflects the
    new row. Nothing else: a status change goes through `transitions.Transitions.write`."""
    values.setdefault("updated_at", utcnow())
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.version == job.version)
        .values(**values, version=job.version + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False
    for key, value in values.items():
        setattr(job, key, value)
    job.version += 1
    return True


async def queued_followers(session: AsyncSession, job_id: str) -> list[Job]:
    """The queued followers of `job_id`, oldest first, locked (Postgres) and detached from the session:
    they are written by compare-and-set only, never flushed by the ORM."""
    followers = list(
        (
            await session.scalars(
                select(Job)
                .where(Job.source_job_id == job_id, Job.status == JobStatus.QUEUED)
                .order_by(Job.created_at, Job.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    for follower in followers:
        session.expunge(follower)
    return followers


async def extend_lease(session: AsyncSession, job: Job, owner: str, lease_until: datetime) -> bool:
    """Keep a long operation's lease alive without changing the job (no version bump)."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.version == job.version, Job.lease_owner == owner)
        .values(lease_expires_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def task_ids_in_use(session: AsyncSession, task_ids: Sequence[str]) -> set[str]:
    if not task_ids:
        return set()
    rows = await session.scalars(select(Job.task_id).where(Job.task_id.in_(list(task_ids))))
    return {r for r in rows.all() if r}


async def unresolved_creates(
    session: AsyncSession, model: str, *, exclude_id: str, account: str | None = None
) -> list[Job]:
    """Other jobs of this model whose create is in flight or whose outcome is still unknown; on the named
    `account` only (another account's creates cannot show in this one's task list)."""
    query = select(Job).where(
        Job.model == model,
        Job.status == JobStatus.QUEUED,
        Job.submit_started_at.is_not(None),
        Job.id != exclude_id,
    )
    if account is not None:
        query = query.where(Job.account == account)
    return list((await session.scalars(query)).all())


async def next_due_at(session: AsyncSession, now: datetime) -> datetime | None:
    """When the next active job becomes due (for the loop's idle wait).

    Rows already due but not claimed are waiting for an upstream slot: a slot frees when a handler
    finishes (which wakes the loop) or within a poll interval, so they must not make the loop spin.
    """
    query = select(func.min(Job.next_attempt_at)).where(
        Job.status.in_(ACTIVE),
        Job.next_attempt_at > now,
    )
    value: datetime | None = await session.scalar(query)
    return value


async def events_after(session: AsyncSession, job_id: str, after_id: int, limit: int = 100) -> list[JobEvent]:
    rows = await session.scalars(
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
        .order_by(JobEvent.id)
        .limit(limit)
    )
    return list(rows.all())


async def last_event_id(session: AsyncSession, job_id: str) -> int:
    value = await session.scalar(select(func.max(JobEvent.id)).where(JobEvent.job_id == job_id))
    return int(value or 0)


async def recent_runs(
    session: AsyncSession, model: str, *, limit: int
) -> list[tuple[str, datetime, datetime]]:
    """`(task kind, submitted_at, finished_at)` of the model's latest succeeded jobs that ran upstream
    themselves (every tenant's: only their timing is read), newest first."""
    rows = await session.execute(
        select(Job.request, Job.submitted_at, Job.finished_at)
        .where(
            Job.model == model,
            Job.status == JobStatus.SUCCEEDED,
            Job.source_job_id.is_(None),
            Job.submitted_at.is_not(None),
            Job.finished_at.is_not(None),
        )
        .order_by(Job.finished_at.desc())
        .limit(limit)
    )
    return [(task_kind(model, request), start, end) for request, start, end in rows.all()]
