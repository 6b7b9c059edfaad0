"""The emulated DashScope accounts: one per configured key, each its own main account (§1, §7).

An account owns its tasks (another account's task id is UNKNOWN to it, §3.5), its uploads, its running
slots per model family and its submit-RPS and task-API-QPS budgets. Account `n` is the `n`-th key of
`SandboxConfig.api_keys`; the default configuration has one, `sk-sandbox`, so a single-account sandbox
behaves (and its list rows read) exactly as before accounts existed.

Revoking an account (the control API) makes its key answer 401 InvalidApiKey, as a disabled or deleted
key does upstream. [EMU] Per process and in memory, like the fault rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.sandbox.store import Slot

#: The first emulated Alibaba Cloud account (list rows show it); account `n` is this plus `n - 1`.
ACCOUNT_UID = "1690000000000000"


def digits(text: str, count: int) -> str:
    """`count` decimal digits derived from `text`: stable ids that look like DashScope's."""
    return str(int(hashlib.sha256(text.encode()).hexdigest(), 16))[:count]


@dataclass(frozen=True)
class Account:
    name: str  # "1", "2", …: the key's position in the configuration
    key: str

    @property
    def uid(self) -> str:
        """The Alibaba Cloud account id of list rows (`caller_uid`)."""
        return str(int(ACCOUNT_UID) + int(self.name) - 1)

    @property
    def api_key_id(self) -> str:
        return digits(self.key, 6)

    @property
    def upload_account(self) -> str:
        """The directory of its uploads under `dashscope-instant/` (§6)."""
        return digits(self.uid, 12)

    @property
    def upload_prefix(self) -> str:
        return f"dashscope-instant/{self.upload_account}/"


def accounts_of(keys: Sequence[str]) -> tuple[Account, ...]:
    return tuple(Account(str(n), key) for n, key in enumerate(keys, start=1))


def slot_figures(slots: Iterable[Slot], *, since: float, now: float) -> dict[str, Any]:
    """Of one account's family: tasks running at `now`, the most that ran at once in [since, now], and
    the slot-seconds used in that window (utilization = busy_s / (limit × window))."""
    events: list[tuple[float, int]] = []
    running = 0
    busy_s = 0.0
    for start, end in slots:
        if start <= now and (end is None or now < end):
            running += 1
        begin, finish = max(start, since), min(now if end is None else end, now)
        if begin < finish:
            busy_s += finish - begin
            events += [(begin, 1), (finish, -1)]
    peak = level = 0
    for _, change in sorted(events):  # at one instant an end (-1) sorts before a start (+1)
        level += change
        peak = max(peak, level)
    return {"running": running, "peak": peak, "busy_s": round(busy_s, 3)}
