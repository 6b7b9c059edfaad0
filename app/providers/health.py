"""Which pooled upstream accounts are in rotation: an account whose key is refused (401/403) leaves it.

In-process and learned from this process's own calls: the poller marks an account refused when a create
on it answers 401/403, and in rotation again when a create on it succeeds. A refused account is tried
again after a cool-down (UPSTREAM_ACCOUNT_RETRY_S): one job is placed on it then, so a restored key
returns to rotation by itself and a still-refused one costs one call per cool-down. Readiness and
`/metrics` read the same registry. The single default account (no pool) is never taken out: its
refusals fail the job as they always did.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class _Refusal:
    why: str
    retry_at: float


class AccountHealth:
    """Refused accounts of a pool by name, with when each may be tried again (`clock`: monotonic s)."""

    def __init__(
        self,
        names: Sequence[str | None],
        *,
        retry_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._names = [n for n in names if n is not None]
        self._retry_s = retry_s
        self._clock = clock
        self._refused: dict[str, _Refusal] = {}

    @property
    def names(self) -> list[str]:
        """The pool's accounts (empty for the single default account)."""
        return list(self._names)

    def refused(self, name: str | None, why: str) -> None:
        """A call on `name` was refused (bad or revoked key): out of rotation until the cool-down ends."""
        if name is not None and name in self._names:
            self._refused[name] = _Refusal(why, self._clock() + self._retry_s)

    def accepted(self, name: str | None) -> None:
        """A create on `name` went through: back in rotation."""
        if name is not None:
            self._refused.pop(name, None)

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
        return 1 if self._clock() >= refusal.retry_at else 0

    def probing(self, name: str | None) -> None:
        """A job was placed on refused `name`: the next one waits another cool-down."""
        refusal = self._refused.get(name) if name is not None else None
        if refusal is not None:
            refusal.retry_at = self._clock() + self._retry_s
