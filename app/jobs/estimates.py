"""Honest progress: a job's `progress`, `queue_position` and `eta`, from what the gateway knows.

Run times are learnt from the database, not from the poller's memory (`pacing.RunTimes` lives in each
worker process): the mean time from submit to stored of the latest succeeded jobs of the same kind
(`pacing.task_kind`: model, resolution, duration; `repository.recent_runs`), read once per model per
RUN_HISTORY_TTL_S in each process, so every API process and replica agrees within seconds; before any
job of a kind has finished, `pacing.typical_run_s`.

- queued: the job's 1-based place in its model family's queue, in the order the poller's submit claim
  hands out slots (`repository.queue_positions`: one window query gives every waiting job's place,
  reused for QUEUE_TTL_S by every page and stream of the process), and an ETA: the
  family's slots (UPSTREAM_MAX_INFLIGHT × the accounts in the pool) free up when the jobs holding them
  are expected to end; the jobs ahead take them in turn, each taking as long as this job's kind.
- submitted / running: elapsed since submit against the learnt run time, on 0–RUN_SHARE (never more,
  however late the job runs); the ETA is the submit plus the learnt time (null once that has passed).
- storing: the copy's bytes received against the declared size (`Job.copy_bytes`, written by the
  copying worker about once a second), on RUN_SHARE–99; 100 only once stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.jobs import pacing, repository
from app.jobs.models import Job
from app.jobs.states import JobStatus

#: How long the run times of recent jobs are reused before being read again (per model, per process).
RUN_HISTORY_TTL_S = 10.0
#: How long a family's queue order (every waiting job's place, and the slot holders) is reused: pages
#: and streams in one process share one window query per family per QUEUE_TTL_S, whatever the backlog.
QUEUE_TTL_S = 1.0
#: The share of the bar from submit to the end upstream; the copy (storing) fills the rest but for 1.
RUN_SHARE = 90
#: A family missing from UPSTREAM_MAX_INFLIGHT (the settings have all of them).
DEFAULT_MAX_INFLIGHT = 2


@dataclass(frozen=True)
class Live:
    """What a job looks like right now, beyond its row: computed per read, never stored."""

    progress: int | None
    #: 1: the next job of its family to go upstream; None when not waiting in the queue.
    queue_position: int | None = None
    #: When the job is expected to be stored; None when unknown (or already late).
    eta: datetime | None = None


def progress(job: Job, *, run_s: float | None = None, now: datetime | None = None) -> int | None:
    """The job's progress, 0–100 (None once failed or canceled); `run_s`: the learnt run time of its kind
    (default: the typical guess). The one function every view uses (jobs API, events, OpenAI's `progress`).
    """
    status = JobStatus(job.status)
    if status in (JobStatus.FAILED, JobStatus.CANCELED):
        return None
    if status is JobStatus.SUCCEEDED:
        return 100
    if status is JobStatus.QUEUED:
        return 0
    if status is JobStatus.STORING:
        total, done = job.copy_total_bytes, job.copy_bytes
        if not total or done is None:
            return RUN_SHARE
        return RUN_SHARE + int((99 - RUN_SHARE) * min(1.0, done / total))
    started = job.submitted_at or job.created_at
    run = run_s if run_s else pacing.typical_run_s(job.request)
    share = min(1.0, max(0.0, ((now or utcnow()) - started).total_seconds() / run))
    return int(RUN_SHARE * share)


def _second(at: datetime) -> datetime:
    """ETAs in whole seconds: they are estimates, and a stream sends a progress event only on a change."""
    return at.replace(microsecond=0)


class Estimator:
    """Learnt run times (cached per model) and the `Live` view of jobs, for any process."""

    def __init__(
        self,
        reads: async_sessionmaker[AsyncSession],
        *,
        max_inflight: Mapping[str, int],
        accounts: int = 1,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._reads = reads
        self._max_inflight = dict(max_inflight)
        self._accounts = max(1, accounts)
        #: The time estimates are made at; tests inject their own.
        self.clock = clock
        # model → (monotonic expiry, its recent runs): one small query per model per RUN_HISTORY_TTL_S.
        self._runs: dict[str, tuple[float, list[tuple[str, datetime, datetime]]]] = {}
        # family → (monotonic expiry, every waiting job's place, the slot holders' (model, request, since)).
        self._queues: dict[str, tuple[float, dict[str, int], list[tuple[str, dict[str, Any], datetime]]]] = {}

    async def run_s(self, model: str, request: dict[str, Any] | None) -> float:
        """Expected seconds from submit to stored for a job of this model and request."""
        cached = self._runs.get(model)
        if cached is None or cached[0] < time.monotonic():
            async with self._reads() as session:
                history = await repository.recent_runs(session, model, limit=4 * pacing.HISTORY_JOBS)
            cached = (time.monotonic() + RUN_HISTORY_TTL_S, history)
            self._runs[model] = cached
        learnt = pacing.mean_run_s(pacing.task_kind(model, request), cached[1])
        return learnt if learnt is not None else pacing.typical_run_s(request)

    def queues_changed(self) -> None:
        """A job of this process changed status (`ChangeFeed` listener): queue orders are read again."""
        self._queues.clear()

    def slots(self, limit_group: str) -> int:
        """The family's upstream slots across the account pool."""
        return max(1, self._max_inflight.get(limit_group, DEFAULT_MAX_INFLIGHT)) * self._accounts

    async def live(self, jobs: Sequence[Job], *, follow: bool = True) -> dict[str, Live]:
        """`Live` of each job, by id: a few queries per model family among them, whatever their number.
        A follower (queued behind an identical job, `source_job_id`) shows the progress and ETA of the
        job it follows, which ends both; it has no queue position of its own."""
        now = self.clock()
        out: dict[str, Live] = {}
        waiting: dict[str, list[Job]] = {}
        following: list[Job] = []
        for job in jobs:
            status = JobStatus(job.status)
            if status is JobStatus.QUEUED and job.submit_started_at is None and job.source_job_id is None:
                waiting.setdefault(job.limit_group, []).append(job)
                continue
            if status is JobStatus.QUEUED and job.source_job_id is not None and follow:
                following.append(job)
                continue
            if status.terminal or status is JobStatus.QUEUED:
                # Finished; or its create is under way (no longer in line, not yet submitted).
                out[job.id] = Live(progress(job, now=now))
                continue
            run = await self.run_s(job.model, job.request)
            if status is JobStatus.STORING:
                eta: datetime | None = now
            else:
                expected = (job.submitted_at or job.created_at) + timedelta(seconds=run)
                eta = expected if expected >= now else None
            out[job.id] = Live(progress(job, run_s=run, now=now), None, _second(eta) if eta else None)
        for group, members in waiting.items():
            out.update(await self._queued(group, members, now))
        if following:
            async with self._reads() as session:
                sources = await repository.get_many(session, list({j.source_job_id or "" for j in following}))
            shown = await self.live(sources, follow=False)
            for job in following:
                source = shown.get(job.source_job_id or "")
                out[job.id] = (
                    Live(source.progress, None, source.eta)
                    if source is not None and source.progress is not None and source.progress < 100
                    else Live(progress(job, now=now))
                )
        return out

    async def _queue(
        self, group: str, ids: list[str]
    ) -> tuple[dict[str, int], list[tuple[str, dict[str, Any], datetime]]]:
        """The family's queue order and slot holders: cached QUEUE_TTL_S, read again sooner after a
        status change in this process (`queues_changed`) or for a job queued since (a new job has its
        place at once). Another process's changes show within QUEUE_TTL_S."""
        cached = self._queues.get(group)
        if cached is None or cached[0] < time.monotonic() or any(i not in cached[1] for i in ids):
            async with self._reads() as session:
                positions = await repository.queue_positions(session, group)
                holders = await repository.slot_holders(session, group)
            cached = (time.monotonic() + QUEUE_TTL_S, positions, holders)
            self._queues[group] = cached
        return cached[1], cached[2]

    async def _queued(self, group: str, jobs: list[Job], now: datetime) -> dict[str, Live]:
        positions, holders = await self._queue(group, [j.id for j in jobs])
        slots = self.slots(group)
        ends = []
        for model, request, since in holders:
            ends.append(max(now, since + timedelta(seconds=await self.run_s(model, request))))
        # When each slot is next free: the holders' expected ends, the idle slots now.
        free = sorted(ends + [now] * max(0, slots - len(ends)))[:slots]
        out: dict[str, Live] = {}
        for job in jobs:
            position = positions.get(job.id)
            if position is None:  # moved on since it was read
                out[job.id] = Live(progress(job, now=now))
                continue
            run = await self.run_s(job.model, job.request)
            # The jobs ahead take the slots in turn, each for about as long as this one will.
            rounds, slot = divmod(position - 1, slots)
            start = free[slot] + timedelta(seconds=rounds * run)
            out[job.id] = Live(0, position, _second(start + timedelta(seconds=run)))
        return out
