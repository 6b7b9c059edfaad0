"""Which pooled upstream accounts are in rotation: an account whose key is refused (401/403) leaves it.

Learned from every call on the account — create, poll, cancel, reconciliation's lookups: a 401/403
(`observe`) takes it out, a call that goes through (`accepted`) puts it back. A refused account is tried
again after a cool-down (UPSTREAM_ACCOUNT_RETRY_S): one job is placed on it then, so a restored key
returns to rotation by itself and a still-refused one costs one call per cool-down.

The state is shared by every process and replica through a `HealthStore` (the database's
`upstream_account_states`, app/db/account_states.py): a refusal seen by one worker takes the account out
for all, and the API replicas' `/readyz` and `/metrics` show it. Each process keeps a copy refreshed at
most every `cache_s` for placement (one small SELECT per second at most); readiness and metrics read the
store each time. Times are wall-clock epoch seconds (shared across hosts; NTP skew is small next to the
cool-down). The single default account (no pool) is never taken out: its refusals fail the job as they
always did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.providers.base import PermanentError

log = logging.getLogger(__name__)

#: A call answered with these statuses means the account's key is refused (bad, revoked, suspended).
ACCOUNT_REFUSED = (401, 403)
#: How long a process trusts its copy of the shared state for placement.
CACHE_S = 1.0


def wall_clock() -> float:
    """Epoch seconds (looked up at each call, so a test can move time for every process it runs)."""
    return time.time()


class HealthStore(Protocol):
    """Where the refused accounts are kept for every process (app/db/account_states.py)."""

    async def load(self) -> dict[str, tuple[str, float]]:
        """name → (why, retry_at) of every refused account."""
        ...

    async def refuse(self, name: str, why: str, now: float, retry_at: float) -> None: ...

    async def defer(self, name: str, retry_at: float) -> None: ...

    async def clear(self, name: str) -> None: ...


@dataclass
class _Refusal:
    why: str
    retry_at: float


def refusal(exc: Exception) -> str | None:
    """Why `exc` says the account's key is refused ("HTTP 401 InvalidApiKey"), or None."""
    if isinstance(exc, PermanentError) and exc.status in ACCOUNT_REFUSED:
        return f"HTTP {exc.status} {exc.code or ''}".strip()
    return None


class AccountHealth:
    """Refused accounts of a pool by name, with when each may be tried again."""

    def __init__(
        self,
        names: Sequence[str | None],
        *,
        retry_s: float,
        store: HealthStore | None = None,
        clock: Callable[[], float] | None = None,
        cache_s: float = CACHE_S,
    ) -> None:
        self._names = [n for n in names if n is not None]
        self._retry_s = retry_s
        self._store = store if self._names else None
        self._clock = clock
        self._cache_s = cache_s
        self._loaded_at: float | None = None
        self._refused: dict[str, _Refusal] = {}

    def _now(self) -> float:
        return self._clock() if self._clock is not None else wall_clock()

    @property
    def names(self) -> list[str]:
        """The pool's accounts (empty for the single default account)."""
        return list(self._names)

    async def refresh(self, *, force: bool = False) -> None:
        """Read the shared state (at most every `cache_s` unless `force`); a store that cannot be read
        leaves the copy as it was (the database check of /readyz says why)."""
        if self._store is None:
            return
        now = self._now()
        if not force and self._loaded_at is not None and now - self._loaded_at < self._cache_s:
            return
        try:
            rows = await self._store.load()
        except Exception as exc:
            log.warning("upstream account states could not be read: %s", exc)
            return
        self._refused = {n: _Refusal(why, at) for n, (why, at) in rows.items() if n in self._names}
        self._loaded_at = now

    async def observe(self, name: str | None, exc: Exception) -> bool:
        """A call on `name` failed with `exc`: True (and the account out of rotation) when it says the
        key is refused."""
        why = refusal(exc)
        if why is None or name is None or name not in self._names:
            return False
        await self.refused(name, why)
        return True

    async def refused(self, name: str | None, why: str) -> None:
        """A call on `name` was refused (bad or revoked key): out of rotation until the cool-down ends."""
        if name is None or name not in self._names:
            return
        now = self._now()
        if name not in self._refused:
            log.error("upstream account %s refused (%s): out of rotation", name, why)
        self._refused[name] = _Refusal(why, now + self._retry_s)
        await self._write(name, "refuse", lambda store: store.refuse(name, why, now, now + self._retry_s))

    async def accepted(self, name: str | None) -> None:
        """A call on `name` went through: back in rotation (a write only when it was out)."""
        if name is None or name not in self._refused:
            return
        self._refused.pop(name, None)
        log.warning("upstream account %s answers again: back in rotation", name)
        await self._write(name, "clear", lambda store: store.clear(name))

    def up(self, name: str | None) -> bool:
        return name is None or name not in self._refused

    def out(self) -> dict[str, str]:
        """The accounts out of rotation, each with the refusal that took it out."""
        return {name: r.why for name, r in self._refused.items()}

    def placeable(self, name: str | None, free: int) -> int:
        """How many jobs may be placed on `name` of `free` slots: all of them in rotation; out of it none,
        or one once its cool-down has ended (the probe: `probing` once a job is placed on it)."""
        refusal = self._refused.get(name) if name is not None else None
        if refusal is None or free <= 0:
            return free
        return 1 if self._now() >= refusal.retry_at else 0

    async def probing(self, name: str | None) -> None:
        """A job was placed on refused `name`: the next one (in any process) waits another cool-down."""
        refusal = self._refused.get(name) if name is not None else None
        if refusal is not None and name is not None:
            retry_at = refusal.retry_at = self._now() + self._retry_s
            await self._write(name, "defer", lambda store: store.defer(name, retry_at))

    async def _write(self, name: str, what: str, write: Callable[[HealthStore], Awaitable[None]]) -> None:
        if self._store is None:
            return
        try:
            await write(self._store)
        except Exception as exc:  # this process still acts on its own copy; the others learn later
            log.warning("upstream account %s: its state could not be shared (%s): %s", name, what, exc)
