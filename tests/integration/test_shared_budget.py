"""Upstream call budgets live in the database, so every process of a deployment draws on the same one."""

from __future__ import annotations

import asyncio
import itertools
import time

from app.db.budget import DatabaseBudgets
from app.db.engine import create_engine, session_factory


async def test_reservations_from_two_processes_are_spaced_as_one(database_url: str) -> None:
    """Two engines stand for two processes: their reservations on one key interleave, never closer than
    the spacing, so together they stay within the account's rate."""
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        budgets = [DatabaseBudgets(session_factory(engine)) for engine in engines]
        spacing = 0.25
        starts = await asyncio.gather(
            *(budgets[i % 2].reserve("acct:submit:wan2.6", spacing) for i in range(10))
        )
        ordered = sorted(starts)
        gaps = [b - a for a, b in itertools.pairwise(ordered)]
        assert min(gaps) >= spacing - 1e-6, gaps
        # Nothing was reserved further ahead than ten calls need.
        assert ordered[-1] - time.time() < 10 * spacing
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_429_holds_the_budget_for_everyone(database_url: str) -> None:
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        first, second = (DatabaseBudgets(session_factory(engine)) for engine in engines)
        await first.reserve("acct:query", 0.05)
        until = time.time() + 30
        await first.hold_until("acct:query", until)
        assert await second.reserve("acct:query", 0.05) >= until
        # A key never used before can be held too (the 429 came on the very first call).
        await second.hold_until("acct:fresh", until)
        assert await first.reserve("acct:fresh", 0.05) >= until
    finally:
        for engine in engines:
            await engine.dispose()
