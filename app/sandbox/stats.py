"""Counters of what reached the sandbox, so tests can assert "no upstream call" or "exactly N tasks".

Per process and in memory ([EMU]): two processes sharing a state file share tasks, not counters. The
per-account running/peak/busy figures are not counted here but computed from the shared task table
(`Emulator.account_stats`), so they hold across processes; they cover the time since the last reset.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SandboxStats:
    requests: Counter[str] = field(default_factory=Counter)  # by operation, injected faults included
    responses: Counter[int] = field(default_factory=Counter)  # by HTTP status, sandbox-wide
    created: Counter[str] = field(default_factory=Counter)  # tasks actually created, by model
    injected: Counter[str] = field(default_factory=Counter)  # by rule, e.g. "create:429", "task:FAILED"
    injected_status: Counter[int] = field(default_factory=Counter)  # injected HTTP errors, by status
    #: Tasks created, by (account, model); enforced-limit 429s (not injected ones), by (account, "create"
    #: or "task_api").
    account_created: Counter[tuple[str, str]] = field(default_factory=Counter)
    account_throttled: Counter[tuple[str, str]] = field(default_factory=Counter)
    since: float = field(default_factory=time.time)  # the last reset

    @property
    def created_total(self) -> int:
        return sum(self.created.values())

    @property
    def creates(self) -> int:
        """Create requests received (accepted or not)."""
        return self.requests["create"]

    @property
    def gets(self) -> int:
        return self.requests["get"]

    @property
    def cancels(self) -> int:
        return self.requests["cancel"]

    @property
    def lists(self) -> int:
        return self.requests["list"]

    @property
    def downloads(self) -> int:
        return self.requests["download"]

    @property
    def upstream_calls(self) -> int:
        """Every DashScope API request (create, get, cancel, list, policy); not downloads/uploads."""
        return sum(self.requests[op] for op in ("create", "get", "cancel", "list", "policy"))

    def reset(self) -> None:
        for counter in (
            self.requests,
            self.responses,
            self.created,
            self.injected,
            self.injected_status,
            self.account_created,
            self.account_throttled,
        ):
            counter.clear()
        self.since = time.time()

    def account_counts(self, account: str) -> dict[str, Any]:
        created = {model: n for (name, model), n in self.account_created.items() if name == account}
        throttled = {op: n for (name, op), n in self.account_throttled.items() if name == account}
        return {
            "created": created,
            "created_total": sum(created.values()),
            "throttled": {"create": throttled.get("create", 0), "task_api": throttled.get("task_api", 0)},
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "upstream_calls": self.upstream_calls,
            "created": dict(self.created),
            "created_total": self.created_total,
            "gets": self.gets,
            "cancels": self.cancels,
            "lists": self.lists,
            "downloads": self.downloads,
            "responses": {str(status): n for status, n in sorted(self.responses.items())},
            "injected": dict(self.injected),
            "injected_4xx": sum(n for status, n in self.injected_status.items() if 400 <= status < 500),
            "injected_5xx": sum(n for status, n in self.injected_status.items() if status >= 500),
        }
