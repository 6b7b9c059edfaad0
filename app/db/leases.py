"""Leases on queue rows (jobs, webhook deliveries): who holds a row, until when, at which version.

Both tables mix in `Leased` (`version`, `lease_owner`, `lease_expires_at`), and every write to such a
row bumps `version` (renewing a lease one holds is the one exception: it changes only
`lease_expires_at`). Every claim is the same two steps: the queue ranks its due, unleased rows without
locking them (`(id, version)`, best first: its own fairness rules), then `claim` locks them, keeps those
still as they were ranked and leases them, in one UPDATE that bumps `version`, so whoever held a row
before can no longer write it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Integer, String, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import UTCDateTime


class Leased:
    """Columns of a row that workers claim. Every write to such a row bumps `version`."""

    version: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


R = TypeVar("R", bound=Leased)


def unleased(model: type[Leased], now: datetime) -> ColumnElement[bool]:
    return or_(model.lease_expires_at.is_(None), model.lease_expires_at < now)


def leased(model: type[Leased], now: datetime) -> ColumnElement[bool]:
    """Held by a worker now: the negation of `unleased` (a NULL compares false)."""
    return model.lease_expires_at >= now


async def lease(
    session: AsyncSession, model: type[R], ids: list[str], owner: str, until: datetime, **extra: Any
) -> list[R]:
    """Lease rows `ids` to `owner` (in that order), applying `extra` column values in the same UPDATE."""
    if not ids:
        return []
    key = inspect(model).primary_key[0]
    await session.execute(
        update(model)
        .where(key.in_(ids))
        .values(lease_owner=owner, lease_expires_at=until, version=model.version + 1, **extra)
        .execution_options(synchronize_session=False)
    )
    rows = await session.scalars(select(model).where(key.in_(ids)).execution_options(populate_existing=True))
    position = {row_id: i for i, row_id in enumerate(ids)}
    return sorted(rows.all(), key=lambda row: position[inspect(row).identity[0]])


async def claim(
    session: AsyncSession,
    model: type[R],
    ranked: Sequence[tuple[str, int]],
    *,
    count: int,
    owner: str,
    now: datetime,
    until: datetime,
    **extra: Any,
) -> list[R]:
    """Lease to `owner`, until `until`, the first `count` of `ranked` (`(id, version)`, best first) that
    are still claimable, applying `extra` column values in the same UPDATE; in ranked order.

    The candidates were picked without row locks (Postgres refuses `FOR UPDATE` beside the window
    functions and aggregates that rank them). Here they are locked by primary key, skipping rows another
    transaction holds (`FOR UPDATE SKIP LOCKED`: a claim, a finishing attempt, a cancel), and kept only
    if nothing was committed to them since they were ranked (the same `version`) and nobody renewed a
    lease on them (unleased at `now`), so whatever made them due still holds. The check is made here, not
    in SQL: a condition on `status` beside the ids leads SQLite to search by status rather than these
    few rows by primary key. Rank a few spare candidates: some may be skipped.
    """
    if count <= 0 or not ranked:
        return []
    key = inspect(model).primary_key[0]
    lockable = (
        select(key, model.version, model.lease_expires_at)
        .where(key.in_([row_id for row_id, _ in ranked]))
        .with_for_update(skip_locked=True)
    )
    current = {
        row_id: version
        for row_id, version, lease_expires_at in (await session.execute(lockable)).all()
        if lease_expires_at is None or lease_expires_at < now  # as `unleased`
    }
    ids = [row_id for row_id, version in ranked if current.get(row_id) == version][:count]
    return await lease(session, model, ids, owner, until, **extra)
