"""The advisory-lock key scheme (`db/locks.py`): a space per concern, a stable hash per key."""

from __future__ import annotations

from app.db.locks import LockSpace, lock_key


def test_each_concern_has_its_own_space_and_keys_hash_stably_into_int4() -> None:
    spaces = {space.value for space in LockSpace}
    assert len(spaces) == len(LockSpace)
    # The same key in two spaces is two locks; the first int is the space.
    assert lock_key(LockSpace.UPSTREAM_SLOTS, "wan2.6")[0] == LockSpace.UPSTREAM_SLOTS
    assert lock_key(LockSpace.UPSTREAM_SLOTS, "wan2.6") != lock_key(LockSpace.TENANT_QUOTA, "wan2.6")
    # Stable across processes and releases (replicas must agree): the first 32 bits of sha256, signed.
    assert lock_key(LockSpace.TENANT_QUOTA, "acme") == (3, -2111097939)
    for key in ("", "acme", "x" * 1000, "tenant\0cache-key"):
        _, hashed = lock_key(LockSpace.RESULT_REUSE, key)
        assert -(2**31) <= hashed < 2**31
