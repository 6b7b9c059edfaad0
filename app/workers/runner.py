"""Start and stop the background loops (job poller, webhook dispatcher) of one process.

The API process runs them from its lifespan unless `WORKERS_ENABLED=false`; `wan-gateway worker` runs
them alone (`app/workers/process.py`). Stopping is bounded: each loop finishes the work in hand for up to
`SHUTDOWN_GRACE_S`, then cancels the rest, whose leases lapse and are taken over by another worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.lifespan import Gateway

log = logging.getLogger(__name__)


def _report_crash(task: asyncio.Task[None]) -> None:
    """A loop should only end on stop; if it dies, say so (readiness reports it stopped too)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s stopped unexpectedly", task.get_name(), exc_info=exc)


def start_loops_of(gateway: Gateway) -> None:
    grace = gateway.settings.shutdown_grace_s
    for runner in (gateway.poller, gateway.dispatcher):
        loop = asyncio.create_task(runner.run(gateway.stop, drain_grace_s=grace), name=runner.name)
        loop.add_done_callback(_report_crash)
        gateway.loops.append(loop)


async def stop_loops(gateway: Gateway) -> None:
    gateway.stop.set()
    if gateway.loops:
        await asyncio.gather(*gateway.loops, return_exceptions=True)
