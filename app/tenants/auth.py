"""Authentication: turn an `Authorization: Bearer <key>` header into a `Principal` (tenant, limits).

Keys are looked up by hash: configured ones (GATEWAY_API_KEYS, GATEWAY_ADMIN_KEYS) in memory, the others
in `api_keys`, remembered for `cache_ttl_s` (so a revoked key stops working within that time).

Authentication is on as soon as any key exists, configured or created with `wan-gateway keys create`,
unless AUTH_DISABLED=true, and stays on in that process even if every key is then revoked. With none it
is off: every caller is the anonymous principal, which owns jobs with no tenant, has no quotas and may
read the admin endpoints (the lifespan warns loudly, and refuses to start that way against the real
DashScope).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import AppError
from app.tenants import keys
from app.tenants.quotas import BUDGET_PERIODS, BudgetPeriod, QuotaLimits

#: Remembered lookups, valid and invalid; past this many the memory is simply dropped.
_CACHE_MAX = 10_000
CHALLENGE = 'Bearer realm="wan-gateway"'


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


@dataclass(frozen=True)
class Principal:
    #: The jobs' owner; None only when authentication is off.
    tenant: str | None
    key_name: str | None
    admin: bool
    #: None when authentication is off (no quotas).
    limits: QuotaLimits | None


ANONYMOUS = Principal(tenant=None, key_name=None, admin=True, limits=None)


def _period(value: str | None) -> BudgetPeriod | None:
    return cast(BudgetPeriod, value) if value in BUDGET_PERIODS else None


class Authenticator:
    def __init__(
        self,
        # Only reads: the lifespan hands it autocommit sessions (db/engine.py `read_session_factory`).
        sessions: async_sessionmaker[AsyncSession],
        configured: Sequence[keys.ConfiguredKey],
        defaults: QuotaLimits,
        *,
        disabled: bool,
        cache_ttl_s: float,
    ) -> None:
        self._sessions = sessions
        self._defaults = defaults
        self._disabled = disabled
        self._ttl = cache_ttl_s
        self._configured = {
            entry.key_hash: Principal(entry.name, entry.name, entry.admin, defaults) for entry in configured
        }
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._enabled_until = 0.0
        self._enabled = bool(self._configured)

    @property
    def disabled(self) -> bool:
        return self._disabled

    @property
    def configured_count(self) -> int:
        return len(self._configured)

    async def enabled(self) -> bool:
        if self._disabled:
            return False
        if self._enabled:
            return True  # once on, on for good: revoking the last key must not open the doors
        now = time.monotonic()
        if now >= self._enabled_until:
            # One caller looks; the others keep the answer of the last look meanwhile (it is at most
            # `cache_ttl_s` old anyway), instead of every request in flight asking the database at once.
            self._enabled_until = now + self._ttl
            try:
                async with self._sessions() as session:
                    self._enabled = await keys.any_active(session)
            except BaseException:
                self._enabled_until = 0.0  # the next caller looks again
                raise
        return self._enabled

    async def authenticate(self, token: str | None) -> Principal:
        if not await self.enabled():
            return ANONYMOUS
        if not token:
            raise Unauthorized(
                "send your API key as `Authorization: Bearer <key>`",
                code="missing_api_key",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        principal = await self._lookup(keys.hash_key(token))
        if principal is None:
            raise Unauthorized(
                "the API key is not valid (unknown or revoked)",
                code="invalid_api_key",
                headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
            )
        return principal

    async def _lookup(self, key_hash: str) -> Principal | None:
        if (principal := self._configured.get(key_hash)) is not None:
            return principal
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessions() as session:
            row = await keys.find_active(session, key_hash)
        found = None
        if row is not None:
            d = self._defaults
            limits = QuotaLimits(
                max_active_jobs=d.max_active_jobs if row.max_active_jobs is None else row.max_active_jobs,
                submits_per_minute=(
                    d.submits_per_minute if row.submits_per_minute is None else row.submits_per_minute
                ),
                video_seconds_per_day=(
                    d.video_seconds_per_day
                    if row.video_seconds_per_day is None
                    else row.video_seconds_per_day
                ),
                budget_micros=d.budget_micros if row.budget_micros is None else row.budget_micros,
                budget_period=_period(row.budget_period) or d.budget_period,
            )
            found = Principal(row.tenant, row.name, row.admin, limits)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key_hash] = (now + self._ttl, found)
        return found
