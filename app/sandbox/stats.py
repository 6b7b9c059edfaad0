"""Counters of what reached the sandbox, so tests can assert "no upstream call" or "exactly N tasks".

Per process and in memory ([EMU]): two processes sharing a state file share tasks, not counters.
"""

from __future__ import annotations

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
        for counter in (self.requests, self.responses, self.created, self.injected, self.injected_status):
            counter.clear()

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
