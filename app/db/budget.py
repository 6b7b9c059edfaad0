"""Shared call budgets: spacing upstream calls across every process that uses one database.

DashScope's limits are per Alibaba Cloud account, not per process, so replicas must share them. Each
budget is one row holding a GCRA "theoretical arrival time" (`tat`, epoch seconds): a caller reserves the
next free moment with one UPDATE (`tat = max(tat, now) + spacing`) and sleeps until it. Reservations are
strictly spaced, never bursty, whatever the number of processes; a 429 pushes `tat` past its Retry-After
for everyone. Times come from each process's clock: NTP-level skew (milliseconds) is small next to the
spacing (≥ 55 ms).
"""

from __future__ import annotations

import time

from sqlalchemy import ColumnElement, Float, String, case, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, rowcount


class CallBudget(Base):
    __tablename__ = "call_budgets"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    tat: Mapped[float] = mapped_column(Float)


def _later_of(value: float) -> ColumnElement[float]:
    return case((CallBudget.tat > value, CallBudget.tat), else_=value)


class DatabaseBudgets:
    """`SlotStore` over the `call_budgets` table."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def reserve(self, key: str, spacing: float) -> float:
        """The epoch time at which the caller may make its call (now or later)."""
        now = time.time()
        for _ in range(3):
            async with self._sessions.begin() as session:
                tat = await session.scalar(
                    update(CallBudget)
                    .where(CallBudget.key == key)
                    .values(tat=_later_of(now) + spacing)
                    .returning(CallBudget.tat)
                )
                if tat is not None:
                    return float(tat) - spacing
            try:
                async with self._sessions.begin() as session:
                    await session.execute(insert(CallBudget).values(key=key, tat=now + spacing))
                return now
            except IntegrityError:
                continue  # another process created the row first: reserve on it
        raise RuntimeError(f"could not reserve a call on budget {key!r}")

    async def hold_until(self, key: str, until: float) -> None:
        """No call on `key` before `until` (a 429's Retry-After), for every process."""
        for _ in range(3):
            async with self._sessions.begin() as session:
                result = await session.execute(
                    update(CallBudget).where(CallBudget.key == key).values(tat=_later_of(until))
                )
                if rowcount(result):
                    return
            try:
                async with self._sessions.begin() as session:
                    await session.execute(insert(CallBudget).values(key=key, tat=until))
                return
            except IntegrityError:
                continue  # created meanwhile by another process: move it on the next turn
