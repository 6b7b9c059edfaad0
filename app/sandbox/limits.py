"""DashScope's per-account limits as the emulator enforces them (docs/PROTOCOL.md §2.5 and §7).

The sandbox's own table, not the gateway's configuration: the gateway's `UPSTREAM_SUBMIT_RPS` and
`UPSTREAM_MAX_INFLIGHT` are what it *chooses* to send, this is what the account *allows*, so a wrong
gateway default shows up as 429s or queued tasks against the sandbox instead of being mirrored.
tests/unit/test_capabilities_protocol.py pins both to the protocol document.
"""

from __future__ import annotations

#: Create calls per second per model family (Beijing; Singapore's wan2.1-kf2v-plus allows 1).
SUBMIT_RPS: dict[str, float] = {"wan2.6": 5, "wan2.5": 5, "wan2.2": 2, "wan2.1": 2, "kf2v": 2}
#: Tasks processed at once per model family; more wait PENDING.
MAX_RUNNING: dict[str, int] = {"wan2.6": 5, "wan2.5": 5, "wan2.2": 2, "wan2.1": 2, "kf2v": 2}
#: Task query, list and cancel calls per second per account.
TASK_API_QPS = 20.0
