"""When a new task will start and end, decided once at create time.

With concurrency emulation on, a task waits PENDING until one of its family's running slots is free
(§7: extra tasks queue). Planning the whole queue up front keeps the task state a pure function of stored
timestamps. A cancelled PENDING task does not pull later tasks forward ([EMU] simplification).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.sandbox.store import Slot


def _active(slots: Sequence[Slot], at: float) -> int:
    return sum(1 for start, end in slots if start <= at and (end is None or at < end))


def plan(
    created_at: float,
    *,
    pending_s: float,
    running_s: float | None,
    busy: Sequence[Slot] = (),
    max_running: int | None = None,
) -> Slot:
    """(start_at, end_at) for a task. `running_s` None: the task never ends (a `stuck` fault).

    Without `max_running` the task simply starts after `pending_s`. Otherwise it starts at the earliest
    moment from then on at which fewer than `max_running` of `busy` overlap its whole run; if stuck
    tasks hold every slot forever it never starts (start_at = +inf, still cancellable).
    """
    desired = created_at + pending_s
    if max_running is None:
        return desired, None if running_s is None else desired + running_s
    candidates = sorted({desired, *(end for _, end in busy if end is not None and end > desired)})
    for start in candidates:
        until = math.inf if running_s is None else start + running_s
        checkpoints = [start, *(s for s, _ in busy if start < s < until)]
        if all(_active(busy, at) < max_running for at in checkpoints):
            return start, None if running_s is None else until
    return math.inf, None
