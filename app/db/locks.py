"""Advisory locks: one helper and one key scheme for every lock the gateway takes.

A lock is `(space, key)`: the space says what is being serialized (one member of `LockSpace` per
concern, so two concerns can never share a lock), the key which one of them (a model family, a tenant, a
cache key; `""` for a concern that has one lock). On Postgres it is `pg_advisory_xact_lock(space, h)`, the
two-int4 form (its key space does not overlap the one-bigint form), with `h` the first 32 bits of
sha256(key): held until the transaction ends, shown in `pg_locks` as classid = space, objid = h. Two keys
of one space share a lock only if their hashes collide (2^-32), which serializes them and nothing more.

SQLite needs none of this: every write transaction is `BEGIN IMMEDIATE` (db/engine.py), so writers are
serialized already, and the helper does nothing there.

Deadlocks: a transaction that takes several locks takes them in a fixed order (the poller's families in
name order, then nothing else; a create takes its cache key, then the stored object it reuses, then its
tenant; a delete and the retention loop take only the stored object's).
"""

from __future__ import annotations

import hashlib
from enum import IntEnum, unique

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession


@unique
class LockSpace(IntEnum):
    """What a lock serializes. Values are part of the scheme: never reuse one for something else."""

    #: Upstream slot accounting of one model family: count the slots in use, then claim queued jobs.
    UPSTREAM_SLOTS = 1
    #: Creates of identical requests of one tenant (key: tenant and cache key), so a follower is never
    #: attached to a job that is ending, and two identical requests cannot both be submitted.
    RESULT_REUSE = 2
    #: Quota admission of one tenant: count its jobs, then insert one.
    TENANT_QUOTA = 3
    #: Webhook claims (one lock): count the deliveries in flight per origin, then claim under the cap.
    WEBHOOK_CLAIMS = 4
    #: The jobs pointing at one stored object (key: the storage key): a delete or the retention loop
    #: deciding the object goes, against a result reuse handing it to a new job.
    STORED_OBJECT = 5


def lock_key(space: LockSpace, key: str = "") -> tuple[int, int]:
    """The two int4 that name the lock of `key` in `space`."""
    digest = hashlib.sha256(key.encode()).digest()
    return int(space), int.from_bytes(digest[:4], "big", signed=True)


async def xact_lock(session: AsyncSession, space: LockSpace, key: str = "") -> None:
    """Hold the lock of `key` in `space` until the session's transaction ends (Postgres; nothing on
    SQLite, whose write transactions are serialized already)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(*lock_key(space, key))))
