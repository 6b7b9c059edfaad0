"""`LoopRunner`: start a process's background loops (the job poller, the webhook dispatcher) together and
stop them together, with a bounded drain.

The API process runs one from its lifespan unless `WORKERS_ENABLED=false`; `wan-gateway worker` runs one
alone (app/workers/process.py). Stopping is bounded: each loop finishes the work in hand for up to
`SHUTDOWN_GRACE_S`, then cancels the rest, whose leases lapse and are taken over by another worker.

The runner owns the loops' tasks and the stop event; nothing else holds them. It knows a loop only by what
it needs (`Loop`), so it depends on no other part of the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

log = logging.getLogger(__name__)


class Loop(Protocol):
    """What the runner needs of a loop (`ClaimLoop` is one)."""

    @property
    def name(self) -> str: ...

    async def run(self, stop: asyncio.Event, drain_grace_s: float = ...) -> None: ...


def _report_crash(task: asyncio.Task[None]) -> None:
    """A loop should only end on stop; if it dies, say so (readiness reports it stopped too)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s stopped unexpectedly", task.get_name(), exc_info=exc)


class LoopRunner:
    """`async with LoopRunner(loops, drain_grace_s=…) as runner:` runs them until the block ends or
    `request_stop()` (e.g. from a signal handler) is called."""

    def __init__(self, loops: Sequence[Loop], *, drain_grace_s: float) -> None:
        self.loops = tuple(loops)
        self._grace_s = drain_grace_s
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self) -> None:
        if self._tasks:
            raise RuntimeError("the loops are already started")
        for loop in self.loops:
            task = asyncio.create_task(loop.run(self._stop, drain_grace_s=self._grace_s), name=loop.name)
            task.add_done_callback(_report_crash)
            self._tasks[loop.name] = task

    def running(self, name: str) -> bool:
        """Whether the loop called `name` runs now (False once it stopped or crashed)."""
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def request_stop(self) -> None:
        """Ask every loop to stop claiming and drain (safe to call from a signal handler)."""
        self._stop.set()

    async def stop_requested(self) -> None:
        """Until `request_stop()` is called."""
        await self._stop.wait()

    async def stop(self) -> None:
        """Stop every loop and wait for them to drain (at most the grace period, plus cancellation)."""
        self.request_stop()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
