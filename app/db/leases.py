"""Leases on queue rows (jobs, webhook deliveries): who holds a row, until when, at which version.

Both tables mix in `Leased` (`version`, `lease_owner`, `lease_expires_at`). A claim selects due, unleased
ids (`FOR UPDATE SKIP LOCKED` on Postgres) and leases them here in one UPDATE that also bumps `version`,
so whoever held the row before can no longer write it.
"""

from __future__ import annotations

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
