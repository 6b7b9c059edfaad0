"""The `api_keys` table: one row per client key, stored only as a hash.

A key belongs to a tenant (its jobs' `owner`); several keys may share one (rotation). Quota columns
(and the budget) override the gateway-wide defaults for requests made with that key; NULL means the default.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_key_id)
    #: Unique among active keys (checked on create); a revoked key's name can be given again.
    name: Mapped[str] = mapped_column(String(64), index=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    #: sha256 of the key: keys are 32 random bytes, so a fast hash is as good as a slow one here.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The key's first characters, to tell keys apart in listings and logs.
    prefix: Mapped[str] = mapped_column(String(16))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    max_active_jobs: Mapped[int | None] = mapped_column(Integer)
    submits_per_minute: Mapped[int | None] = mapped_column(Integer)
    video_seconds_per_day: Mapped[int | None] = mapped_column(Integer)
    #: The budget in millionths of the region's currency (the jobs' `cost.currency`); 0: none.
    budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    #: `day`, `month` or `total` (tenants/quotas.py `BudgetPeriod`).
    budget_period: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
