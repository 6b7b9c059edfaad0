"""Client keys: generate, hash, parse `GATEWAY_API_KEYS`, and the `api_keys` repository.

A key is `wg_` + 32 random bytes (URL-safe base64). Only its sha256 is kept; the key itself is shown once,
when it is created. Keys from `GATEWAY_API_KEYS`/`GATEWAY_ADMIN_KEYS` are never written to the database:
the environment stays their only source of truth, so removing one there revokes it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.tenants.models import ApiKey
from app.tenants.quotas import BUDGET_PERIODS

KEY_PREFIX = "wg_"
KEY_BYTES = 32
#: Operator-supplied keys must be at least this long (a generated key is 46 characters).
MIN_KEY_LENGTH = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class KeyProblem(ValueError):
    """A key or name that cannot be used, with a message for the operator."""


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:7]


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.match(name):
        raise KeyProblem(
            f"{what} {name!r} must be 1–64 letters, digits or . _ @ - (starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class ConfiguredKey:
    """One `name:key` entry of GATEWAY_API_KEYS (or GATEWAY_ADMIN_KEYS)."""

    name: str
    key_hash: str
    prefix: str
    admin: bool = False


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


def keys_of_settings(api_keys: _Secret | None, admin_keys: _Secret | None) -> list[ConfiguredKey]:
    """GATEWAY_API_KEYS and GATEWAY_ADMIN_KEYS (their settings' values) → entries, names unique across both.
    Here rather than in the lifespan, so `wan-gateway keys list` need not import the whole server."""
    entries: list[ConfiguredKey] = []
    for value, admin, variable in (
        (api_keys, False, "GATEWAY_API_KEYS"),
        (admin_keys, True, "GATEWAY_ADMIN_KEYS"),
    ):
        if value is not None:
            entries += parse_configured_keys(value.get_secret_value(), admin=admin, variable=variable)
    if len({e.name for e in entries}) != len(entries):
        raise KeyProblem("GATEWAY_API_KEYS and GATEWAY_ADMIN_KEYS share a name")
    return entries


def parse_configured_keys(
    value: str, *, admin: bool = False, variable: str = "GATEWAY_API_KEYS"
) -> list[ConfiguredKey]:
    """`name:key,name2:key2` → entries; the messages name the variable and the entry, never the key."""
    entries: list[ConfiguredKey] = []
    for position, item in enumerate(value.replace("\n", ",").split(","), start=1):
        item = item.strip()
        if not item:
            continue
        name, sep, key = item.partition(":")
        name, key = name.strip(), key.strip()
        if not sep or not name or not key:
            raise KeyProblem(f"{variable}: entry {position} must look like name:key")
        check_name(name, f"{variable}: entry {position}'s name")
        if len(key) < MIN_KEY_LENGTH:
            raise KeyProblem(
                f"{variable}: the key of {name!r} is {len(key)} characters; use at least {MIN_KEY_LENGTH} "
                "random ones (`wan-gateway keys generate` prints one)"
            )
        entries.append(ConfiguredKey(name, hash_key(key), display_prefix(key), admin))
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise KeyProblem(f"{variable}: a name appears twice")
    return entries


# --- repository --------------------------------------------------------------------------------


async def create(
    session: AsyncSession,
    name: str,
    *,
    tenant: str | None = None,
    admin: bool = False,
    max_active_jobs: int | None = None,
    submits_per_minute: int | None = None,
    video_seconds_per_day: int | None = None,
    budget_micros: int | None = None,
    budget_period: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `tenant` (default: `name`); returns the row and the key, which is never stored.
    `budget_micros` is in millionths of the region's currency (None: QUOTA_BUDGET, 0: no budget)."""
    check_name(name)
    if budget_micros is not None and budget_micros < 0:
        raise KeyProblem("the budget must be 0 (none) or more")
    if budget_period is not None and budget_period not in BUDGET_PERIODS:
        raise KeyProblem(f"the budget period must be one of {', '.join(BUDGET_PERIODS)}")
    check_name(tenant or name, "tenant")
    if await session.scalar(select(ApiKey.id).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))):
        raise KeyProblem(f"a key named {name!r} exists already")
    key = generate_key()
    row = ApiKey(
        name=name,
        tenant=tenant or name,
        key_hash=hash_key(key),
        prefix=display_prefix(key),
        admin=admin,
        max_active_jobs=max_active_jobs,
        submits_per_minute=submits_per_minute,
        video_seconds_per_day=video_seconds_per_day,
        budget_micros=budget_micros,
        budget_period=budget_period,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row, key


async def list_keys(session: AsyncSession, *, include_revoked: bool = False) -> Sequence[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.name)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return (await session.scalars(query)).all()


async def revoke(session: AsyncSession, name_or_id: str) -> ApiKey:
    row = await session.scalar(
        select(ApiKey)
        .where((ApiKey.name == name_or_id) | (ApiKey.id == name_or_id))
        .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc())
        .limit(1)
    )
    if row is None:
        raise KeyProblem(
            f"no key named {name_or_id!r} (keys from GATEWAY_API_KEYS are revoked by removing them)"
        )
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


async def find_active(session: AsyncSession, key_hash: str) -> ApiKey | None:
    return await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )


async def any_active(session: AsyncSession) -> bool:
    return await session.scalar(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)).limit(1)) is not None
