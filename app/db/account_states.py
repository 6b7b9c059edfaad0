"""Which pooled upstream accounts are refused, shared by every process on one database.

One row per account out of rotation (`upstream_account_states`): why its key was refused and when a
job may be placed on it again (`retry_at`, epoch seconds). `providers/health.AccountHealth` writes a row
when any call on the account answers 401/403, moves `retry_at` on when it places a probe, and deletes the
row when a call on the account goes through; every process reads the table (cached for a second), so
placement, `/readyz` and `/metrics` agree across replicas. No row: the account is in rotation.
"""

from __future__ import annotations

from sqlalchemy import Float, String, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, rowcount


class AccountState(Base):
    __tablename__ = "upstream_account_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The refusal that took it out, e.g. "HTTP 401 InvalidApiKey".
    why: Mapped[str] = mapped_column(String(200))
    refused_at: Mapped[float] = mapped_column(Float)
    #: When one job may be placed on it again (the probe).
    retry_at: Mapped[float] = mapped_column(Float)


class DatabaseAccountStates:
    """`providers.health.HealthStore` over the `upstream_account_states` table."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def load(self) -> dict[str, tuple[str, float]]:
        """Every refused account: name → (why, retry_at)."""
        async with self._sessions() as session:
            rows = (
                await session.execute(select(AccountState.name, AccountState.why, AccountState.retry_at))
            ).all()
        return {name: (why, retry_at) for name, why, retry_at in rows}

    async def refuse(self, name: str, why: str, now: float, retry_at: float) -> None:
        values = {"why": why[:200], "refused_at": now, "retry_at": retry_at}
        for _ in range(3):
            async with self._sessions.begin() as session:
                result = await session.execute(
                    update(AccountState).where(AccountState.name == name).values(**values)
                )
                if rowcount(result):
                    return
            try:
                async with self._sessions.begin() as session:
                    await session.execute(insert(AccountState).values(name=name, **values))
                return
            except IntegrityError:
                continue  # another process recorded it first: update that row on the next turn

    async def defer(self, name: str, retry_at: float) -> None:
        """A probe was placed on refused `name`: the next one waits until `retry_at`."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(AccountState).where(AccountState.name == name).values(retry_at=retry_at)
            )

    async def clear(self, name: str) -> None:
        """A call on `name` went through: back in rotation."""
        async with self._sessions.begin() as session:
            await session.execute(delete(AccountState).where(AccountState.name == name))
