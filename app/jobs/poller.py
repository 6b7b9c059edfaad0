"""The job loop: claim due jobs with a lease, then submit, reconcile, poll or store each one.

The database is the queue. Each tick claims (a) queued jobs of every model family that has a free
upstream slot, shared fairly across tenants (`repository.fair_submit_order`), and (b) due jobs to poll,
copy, reconcile or expire. Every change is a compare-and-set on the job's version; a process killed at
any point leaves rows that the next claim (after the lease runs out) picks up where they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import logcontext
from app.db.base import utcnow
from app.jobs import repository
from app.jobs.delivery import billable_seconds
from app.jobs.feed import ChangeFeed
from app.jobs.models import Job
from app.jobs.pacing import RunTimes, next_poll_delay, running_since, task_kind, upstream_seconds
from app.jobs.reconcile import Adopt, Attempt, Candidate, Evidence, Wait, by_request_id, decide, overlaps
from app.jobs.states import JobStatus
from app.jobs.transitions import Transitions
from app.logsafety import strip_query
from app.loops import ClaimLoop
from app.providers.base import (
    AccountPool,
    PermanentError,
    ProviderError,
    ProviderTask,
    TaskState,
    TransientError,
    VideoProvider,
)
from app.providers.health import AccountHealth
from app.retry import MAX_BACKOFF_S, backoff
from app.storage.base import Storage
from app.storage.copy import CopyError, OnProgress, copy_video, parse_url_expiry
from app.storage.space import StorageSpace
from app.telemetry import tracing

log = logging.getLogger(__name__)

#: Upstream keeps a result URL this long when it gives no `Expires=` (docs/PROTOCOL.md §7).
RESULT_URL_LIFETIME = timedelta(hours=24)
#: A refused poll (bad key, revoked access) is our configuration's fault, not the job's: retry slowly.
POLL_REFUSED_RETRY_S = 30.0
#: A transient error delays a job by at most this many POLL_MAX_INTERVAL_S (Retry-After still wins).
RETRY_CAP_POLLS = 4
#: A storing job's copy progress is written at most this often (and once the body is in).
COPY_PROGRESS_EVERY_S = 1.0
#: What a retrying job shows clients (`Job.retry`) when the failure has no reason of its own to give.
TEMPORARY_ERROR = {"code": "temporary_error", "message": "a step failed for a reason that may pass; retrying"}


class Action(Enum):
    SUBMIT = "submit"
    WORK = "work"  # whatever the job's state calls for: reconcile, poll, store, expire


@dataclass(frozen=True)
class PollerConfig:
    """Built from Settings by app/wiring.py; no defaults here, so each is written once (app/config.py)."""

    poll_min_s: float
    poll_max_s: float
    lease_s: float
    concurrency: int
    batch_size: int
    reconcile_grace_s: float
    max_inflight: Mapping[str, int]
    max_video_bytes: int
    download_timeout_s: float
    default_max_inflight: int = 2  # a family missing from max_inflight (UPSTREAM_MAX_INFLIGHT has all)


class LostJob(Exception):
    """Our compare-and-set failed: someone else (another worker, a cancel) changed the job."""


#: The span of a step, by the status it starts from (tracing on: app/telemetry/tracing.py).
_STEP_SPANS = {
    JobStatus.QUEUED: "wan.job.reconcile",
    JobStatus.SUBMITTED: "wan.job.poll",
    JobStatus.RUNNING: "wan.job.poll",
    JobStatus.STORING: "wan.job.store",
}


def _span_name(job: Job, action: Action) -> str:
    if action is Action.SUBMIT:
        return "wan.job.submit"
    return _STEP_SPANS.get(JobStatus(job.status), "wan.job.step")


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class JobPoller(ClaimLoop[tuple[Job, Action]]):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        provider: VideoProvider,
        storage: Storage,
        download_http: httpx.AsyncClient,
        config: PollerConfig,
        *,
        transitions: Transitions,
        feed: ChangeFeed,
        space: StorageSpace,
        worker_id: str | None = None,
        accounts: AccountPool | None = None,
        health: AccountHealth | None = None,
    ) -> None:
        super().__init__(
            name="job poller",
            concurrency=config.concurrency,
            batch_size=config.batch_size,
            idle_max_s=config.poll_min_s,
        )
        self._sessions = sessions
        #: Where jobs are placed; a job's task is only ever asked about on its own account (`job.account`).
        self._accounts = accounts or AccountPool.single(provider)
        #: Which pooled accounts are in rotation (placement skips the others, but for a probe).
        self.health = health or AccountHealth(self._accounts.names, retry_s=60.0)
        self._storage = storage
        self._download = download_http
        self._config = config
        self._transitions = transitions
        self._feed = feed
        self._space = space
        self.worker_id = worker_id or make_worker_id()
        self._run_times = RunTimes()

    async def next_due_at(self) -> datetime | None:
        async with self._sessions() as session:
            return await repository.next_due_at(session, utcnow())

    # --- claiming -----------------------------------------------------------------------------
    async def claim(self, limit: int) -> list[tuple[Job, Action]]:
        now = utcnow()
        lease_until = now + timedelta(seconds=self._config.lease_s)
        claimed: list[tuple[Job, Action]] = []
        probed: set[str | None] = set()
        await self.health.refresh()  # what every process learnt of the accounts (cached ~1 s)
        async with self._sessions.begin() as session:
            for group in await repository.limit_groups_with_queued(session, now):
                await repository.lock_family(session, group)
                cap = self._config.max_inflight.get(group, self._config.default_max_inflight)
                # Each account has the family's cap of its own (UPSTREAM_MAX_INFLIGHT is per account); the
                # fair order across tenants is the family's, whichever account a slot is on.
                for account in self._accounts.names:
                    in_use = await repository.upstream_slots_in_use(session, group, account)
                    free = self.health.placeable(account, min(cap - in_use, limit - len(claimed)))
                    jobs = await repository.claim_for_submit(
                        session, group, free, self.worker_id, now, lease_until, account=account
                    )
                    if jobs and not self.health.up(account):
                        probed.add(account)
                    claimed += [(job, Action.SUBMIT) for job in jobs]
            rest = limit - len(claimed)
            if rest > 0:
                jobs = await repository.claim_due(session, rest, self.worker_id, now, lease_until)
                claimed += [(job, Action.WORK) for job in jobs]
        for account in probed:  # after the commit: a write of its own (SQLite's writes take turns)
            await self.health.probing(account)
        return claimed

    # --- handling -----------------------------------------------------------------------------
    async def handle(self, item: tuple[Job, Action]) -> None:
        job, action = item
        # Every line of this step, the copy's and the HTTP client's included, names the job (logcontext).
        with (
            tracing.job_span(_span_name(job, action), job.id, job.traceparent, status=job.status),
            logcontext.bind(**logcontext.job_fields(job)),
        ):
            await self._handle(job, action)

    async def _handle(self, job: Job, action: Action) -> None:
        try:
            async with self._keep_lease(job):
                if action is Action.SUBMIT:
                    await self._submit(job)
                else:
                    await self._work(job)
        except LostJob:
            log.info("job %s changed under worker %s; leaving it", job.id, self.worker_id)
        except Exception as exc:
            log.exception("job %s: unexpected error", job.id)
            with contextlib.suppress(Exception):
                await self._retry_later(job, f"internal error: {exc!r}", None)

    @contextlib.asynccontextmanager
    async def _keep_lease(self, job: Job) -> AsyncIterator[None]:
        """Extend the lease while a long step (a big copy) runs, so nobody else starts the same work."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._config.lease_s / 3)
                until = utcnow() + timedelta(seconds=self._config.lease_s)
                with contextlib.suppress(Exception):
                    async with self._sessions.begin() as session:
                        await repository.extend_lease(session, job, self.worker_id, until)

        renewer = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _work(self, job: Job) -> None:
        status = JobStatus(job.status)
        now = utcnow()
        if status is JobStatus.QUEUED:
            if job.submit_started_at is not None:
                await self._reconcile(job)
            elif now >= job.deadline_at:
                await self._fail(job, "deadline_exceeded", "the job was not submitted before its deadline")
            else:
                await self._release(job, next_attempt_at=now)
        elif status in (JobStatus.SUBMITTED, JobStatus.RUNNING):
            await self._poll(job)
        elif status is JobStatus.STORING:
            await self._store(job)

    # --- writes -------------------------------------------------------------------------------
    async def _write(self, job: Job, **values: Any) -> None:
        if ("last_error" in values or "retry_count" in values) and "retry_reason" not in values:
            # The client-visible reason (`Job.retry`) describes the latest transient failure only: any
            # other outcome of a step (progress, a note for operators) ends it.
            values["retry_reason"] = None
        async with self._sessions.begin() as session:
            changed = await self._transitions.write(session, job, **values)
            if changed is None:
                raise LostJob(job.id)
        self._feed.notify(*changed.jobs)

    async def _release(self, job: Job, **values: Any) -> None:
        await self._write(job, lease_owner=None, lease_expires_at=None, **values)

    async def _retry_later(
        self,
        job: Job,
        error: str,
        retry_after: float | None,
        *,
        reason: dict[str, str] | None = None,
        **values: Any,
    ) -> None:
        """Try the step again after a backoff. `error` is for operators (`last_error`, may be technical);
        `reason` ({code, message}, client-safe words) is what the job shows meanwhile (`Job.retry`)."""
        attempt = job.retry_count
        # A job's transient troubles add up over its life (creates, lookups, polls); cap the wait at a few
        # poll intervals so a flaky stretch upstream never parks a job for minutes.
        cap = min(MAX_BACKOFF_S, RETRY_CAP_POLLS * self._config.poll_max_s)
        delay = backoff(attempt, self._config.poll_min_s, retry_after, cap=cap)
        await self._release(
            job,
            retry_count=attempt + 1,
            last_error=error[:2000],
            retry_reason=reason or TEMPORARY_ERROR,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
            **values,
        )

    async def _fail(
        self, job: Job, code: str, message: str, upstream_code: str | None = None, **values: Any
    ) -> None:
        log.warning("job %s failed: %s: %s", job.id, code, message)
        await self._release(
            job,
            status=JobStatus.FAILED,
            error={"code": code, "message": message, "upstream_code": upstream_code},
            finished_at=utcnow(),
            next_attempt_at=None,
            submit_started_at=None,
            **values,
        )

    def _poll_delay(self, job: Job, task: ProviderTask, now: datetime) -> float:
        # Time RUNNING counts, not time queued upstream: a task waiting for a slot tells nothing yet.
        started = running_since(job.submitted_at, task.submit_time, task.scheduled_time)
        return next_poll_delay(
            poll_count=job.poll_count,
            elapsed_s=0.0 if started is None else (now - started).total_seconds(),
            expected_s=None
            if started is None
            else self._run_times.expected(task_kind(job.model, job.request)),
            min_s=self._config.poll_min_s,
            max_s=self._config.poll_max_s,
        )

    # --- submit -------------------------------------------------------------------------------
    async def _submit(self, job: Job) -> None:
        if utcnow() >= job.deadline_at:
            await self._fail(job, "deadline_exceeded", "the job was not submitted before its deadline")
            return
        try:
            receipt = await self._accounts.of(job.account).submit(job.upstream_body or {})
        except PermanentError as exc:
            if self._accounts.pooled and await self.health.observe(job.account, exc):
                await self._account_refused(job, exc)
                return
            await self._fail(job, "upstream_rejected", f"DashScope refused the task: {exc.message}", exc.code)
            return
        except TransientError as exc:
            now = utcnow()
            if exc.maybe_created:
                # The task may exist: it is looked for in the task list before anything is sent again.
                log.warning("job %s: ambiguous create (%s); reconciling", job.id, exc)
                attempt = Attempt(
                    sent_at=exc.sent_at or job.submit_started_at or now,
                    answered_at=now,
                    request_id=exc.request_id,
                )
                await self._release(
                    job,
                    create_attempt=attempt.dump(),
                    last_error=f"create outcome unknown: {exc}"[:2000],
                    next_attempt_at=now + timedelta(seconds=min(2.0, self._config.poll_min_s)),
                )
            else:
                await self._retry_later(
                    job, f"create: {exc}", exc.retry_after, submit_started_at=None, create_attempt=None
                )
            return
        await self.health.accepted(job.account)
        try:
            await self._mark_submitted(
                job, receipt.task_id, receipt.state, receipt.request_id, first_poll_in=self._config.poll_min_s
            )
        except IntegrityError:
            # Another job holds the task this create just made: it was adopted by mistake. Never create
            # again for this job (that would pay twice); say so loudly instead.
            log.error("job %s: its new task %s is already claimed by another job", job.id, receipt.task_id)
            await self._fail(
                job,
                "upstream_task_conflict",
                f"DashScope task {receipt.task_id}, created for this job, is recorded on another job",
            )
            return
        except LostJob:
            log.error(
                "job %s: lost its lease while creating task %s; reconciliation will adopt it",
                job.id,
                receipt.task_id,
            )
            raise
        log.info("job %s submitted as task %s", job.id, receipt.task_id)

    async def _account_refused(self, job: Job, exc: PermanentError) -> None:
        """The account's key was refused: no task was made, so the job is not failed but goes back to the
        queue unbound, for an account in rotation (or this one, once its cool-down ends)."""
        log.error(
            "upstream account %s refused a create (%s): job %s goes back to the queue",
            job.account,
            exc,
            job.id,
        )
        await self._release(
            job,
            account=None,
            submit_started_at=None,
            create_attempt=None,
            last_error=f"create refused by account {job.account}: {exc}"[:2000],
            next_attempt_at=utcnow(),
        )

    async def _mark_submitted(
        self, job: Job, task_id: str, state: TaskState, request_id: str | None, *, first_poll_in: float
    ) -> None:
        """The job now owns upstream task `task_id`; the create attempt is over."""
        logcontext.update(upstream_task_id=task_id, upstream_request_id=request_id)
        now = utcnow()
        await self._release(
            job,
            status=JobStatus.SUBMITTED,
            task_id=task_id,
            upstream_status=state.value,
            upstream={**(job.upstream or {}), "request_id": request_id},
            submitted_at=now,
            submit_started_at=None,
            create_attempt=None,
            retry_count=0,
            last_error=None,
            poll_count=0,
            next_attempt_at=now + timedelta(seconds=first_poll_in),
        )

    # --- reconcile (rules in jobs/reconcile.py) -------------------------------------------------
    async def _reconcile(self, job: Job) -> None:
        assert job.submit_started_at is not None
        now = utcnow()
        attempt = Attempt.load(job.create_attempt, job.submit_started_at)
        window = attempt.window(now)
        provider = self._accounts.of(job.account)  # the account the create went to, never another
        try:
            listed = await provider.list_tasks(job.model, *window)
        except ProviderError as exc:
            await self.health.observe(job.account, exc)  # its jobs wait for the key (never another account)
            await self._reconcile_later(job, attempt, f"reconcile: listing tasks: {exc}")
            return
        await self.health.accepted(job.account)
        async with self._sessions() as session:
            in_use = await repository.task_ids_in_use(session, [t.task_id for t in listed])
            others = await repository.unresolved_creates(
                session, job.model, exclude_id=job.id, account=job.account
            )
        other_attempts = [Attempt.load(o.create_attempt, o.submit_started_at or now) for o in others]
        other_request_ids = {a.request_id for a in other_attempts if a.request_id}
        candidates = [t for t in listed if t.task_id not in in_use and t.request_id not in other_request_ids]

        decision = by_request_id(candidates, attempt.request_id)
        if decision is None and candidates:
            fetched = []
            for task in candidates:
                try:
                    fetched.append(Candidate(task, await provider.get(task.task_id)))
                except ProviderError as exc:  # unknown is not "not ours": decide on a later pass
                    await self.health.observe(job.account, exc)
                    await self._reconcile_later(
                        job, attempt, f"reconcile: reading task {task.task_id}: {exc}"
                    )
                    return
            decision = decide(
                Evidence(
                    candidates=fetched,
                    our_prompt=(job.upstream_body or {}).get("input", {}).get("prompt"),
                    attempt_at=attempt.sent_at,
                    other_creates_overlap=any(overlaps(window, a.window(now)) for a in other_attempts),
                )
            )
        if isinstance(decision, Adopt):
            await self._adopt(job, attempt, decision)
        elif isinstance(decision, Wait):
            await self._reconcile_later(job, attempt, f"reconcile: {decision.why}")
        else:
            await self._nothing_found(job, attempt.searched_empty(now))

    async def _adopt(self, job: Job, attempt: Attempt, decision: Adopt) -> None:
        task = decision.task
        try:
            await self._mark_submitted(job, task.task_id, task.state, task.request_id, first_poll_in=0)
        except IntegrityError:  # another job adopted it a moment earlier
            await self._reconcile_later(job, attempt, f"reconcile: task {task.task_id} was just claimed")
            return
        log.warning("job %s: adopted upstream task %s (%s)", job.id, task.task_id, decision.why)

    async def _nothing_found(self, job: Job, attempt: Attempt) -> None:
        now = utcnow()
        if not attempt.may_resend(now, timedelta(seconds=self._config.reconcile_grace_s)):
            delay = max(self._config.poll_min_s, self._config.reconcile_grace_s / 3)
            await self._release(
                job,
                create_attempt=attempt.dump(),
                last_error="reconcile: no task found yet for the ambiguous create",
                next_attempt_at=now + timedelta(seconds=delay),
            )
        elif now >= job.deadline_at:
            await self._fail(job, "deadline_exceeded", "the job was not submitted before its deadline")
        else:
            log.warning("job %s: the ambiguous create made no task; sending it again", job.id)
            await self._release(job, submit_started_at=None, create_attempt=None, next_attempt_at=now)

    async def _reconcile_later(self, job: Job, attempt: Attempt, reason: str) -> None:
        if utcnow() >= job.deadline_at:
            await self._fail(
                job,
                "create_outcome_unknown",
                "whether DashScope created this job's task could not be confirmed before the deadline",
            )
            return
        await self._retry_later(job, reason, None, create_attempt=attempt.dump())

    # --- poll ---------------------------------------------------------------------------------
    async def _poll(self, job: Job) -> None:
        assert job.task_id is not None
        try:
            task = await self._accounts.of(job.account).get(job.task_id)
        except TransientError as exc:
            await self._retry_later(job, f"poll: {exc}", exc.retry_after)
            return
        except PermanentError as exc:
            # Our key or configuration is wrong, not the job: keep it and keep trying, slowly (a restored
            # key finds the task again), until its deadline, which fails it saying why. In a pool a
            # refused key takes the account out of rotation for every process.
            log.error("job %s: polling task %s refused: %s", job.id, job.task_id, exc)
            await self.health.observe(job.account, exc)
            now = utcnow()
            if now >= job.deadline_at:
                await self._fail(
                    job,
                    "upstream_account_refused",
                    f"the upstream account holding this job's task refused every poll until the job's "
                    f"deadline ({exc.message})",
                    exc.code,
                )
                return
            wait = min(POLL_REFUSED_RETRY_S, max(0.0, (job.deadline_at - now).total_seconds()))
            await self._retry_later(
                job,
                f"poll refused: {exc}",
                wait,
                reason={
                    "code": "upstream_account_refused",
                    "message": "the upstream account holding this job's task refuses its key; retrying",
                },
            )
            return
        await self.health.accepted(job.account)
        await self._apply(job, task)

    async def _apply(self, job: Job, task: ProviderTask) -> None:
        now = utcnow()
        upstream = {
            **(job.upstream or {}),
            "submit_time": task.submit_time,
            "scheduled_time": task.scheduled_time,
            "end_time": task.end_time,
            "orig_prompt": task.orig_prompt,
            "actual_prompt": task.actual_prompt,
        }
        if task.request_id and not upstream.get("request_id"):
            upstream["request_id"] = task.request_id
            logcontext.update(upstream_request_id=task.request_id)
        upstream = {k: v for k, v in upstream.items() if v is not None}
        common: dict[str, Any] = {"upstream_status": task.state.value, "upstream": upstream, "retry_count": 0}
        state = task.state
        if state in (TaskState.PENDING, TaskState.RUNNING) and now >= job.deadline_at:
            # Polled first, so a task that finished in time is stored rather than lost.
            if state is TaskState.PENDING:
                try:
                    await self._accounts.of(job.account).cancel(job.task_id or "")
                except ProviderError as exc:
                    await self.health.observe(job.account, exc)
            await self._fail(
                job,
                "deadline_exceeded",
                f"DashScope had not finished the task by the job's deadline ({state})",
            )
        elif state in (TaskState.PENDING, TaskState.RUNNING):
            status = JobStatus.RUNNING if state is TaskState.RUNNING else JobStatus(job.status)
            await self._release(
                job,
                status=status,
                poll_count=job.poll_count + 1,
                last_error=None,
                next_attempt_at=now + timedelta(seconds=self._poll_delay(job, task, now)),
                **common,
            )
        elif state is TaskState.SUCCEEDED:
            if (ran := upstream_seconds(task.scheduled_time, task.end_time)) is not None:
                self._run_times.observe(task_kind(job.model, job.request), ran)
            if not task.video_url:
                await self._retry_later(job, "SUCCEEDED without video_url", None)
                return
            expires = parse_url_expiry(task.video_url) or now + RESULT_URL_LIFETIME
            # The URL without its query: that is a signature, a download credential until it expires.
            log.info("job %s: task SUCCEEDED; copying %s", job.id, strip_query(task.video_url))
            upstream["usage"] = dict(task.usage)
            await self._write(
                job,
                status=JobStatus.STORING,
                video_source_url=task.video_url,
                video_source_expires_at=expires,
                next_attempt_at=now,
                **common,
            )
            # The task's upstream slot is free from this write on (`storing` holds none): claim its next
            # task now, not once the copy below is done (the loop would wake only then; with 10 s tasks
            # that idle slot was most of the ~0.8 s gap between one task's end and the next one's start).
            self.wake()
            await self._store(job)
        elif state is TaskState.FAILED:
            await self._fail(
                job,
                "upstream_failed",
                task.message or "DashScope reported the task FAILED",
                task.code,
                **common,
            )
        elif state is TaskState.CANCELED:
            await self._release(
                job, status=JobStatus.CANCELED, finished_at=now, next_attempt_at=None, **common
            )
        else:
            await self._fail(
                job,
                "upstream_task_unknown",
                f"DashScope no longer knows task {job.task_id} (tasks expire after 24 h)",
                "UNKNOWN",
                **common,
            )

    # --- store --------------------------------------------------------------------------------
    async def _store(self, job: Job) -> None:
        assert job.video_source_url is not None
        expires = job.video_source_expires_at
        if expires is not None and utcnow() >= expires:
            await self._fail(job, "video_url_expired", "the upstream video URL expired before it was copied")
            return
        key = f"{job.id}.mp4"
        try:
            copied = await copy_video(
                self._download,
                job.video_source_url,
                self._storage,
                key,
                max_bytes=self._config.max_video_bytes,
                timeout_s=self._config.download_timeout_s,
                expires_at=expires,
                on_progress=self._copy_progress(job.id),
            )
        except CopyError as exc:
            await self._copy_failed(job, exc)
            return
        self._space.record_success()
        probe = copied.probe
        result = {
            "duration": round(probe.duration_s, 3),
            "fps": round(probe.fps, 3),
            "seed": (job.upstream_body or {}).get("parameters", {}).get("seed"),
            "width": probe.width,
            "height": probe.height,
            "bytes": copied.stored.size_bytes,
            "sha256": copied.stored.sha256,
            "content_type": copied.stored.content_type,
            "video_codec": probe.video_codec,
            "has_audio": probe.has_audio,
        }
        await self._release(
            job,
            status=JobStatus.SUCCEEDED,
            storage_key=copied.stored.key,
            result=result,
            # Quotas count the video delivered (a 5 s video for 9 s asked counts 5), never more than asked.
            video_seconds=billable_seconds(job.request, probe.duration_s),
            finished_at=utcnow(),
            next_attempt_at=None,
            last_error=None,
            retry_count=0,
        )
        log.info("job %s succeeded (%s bytes, %.2fs)", job.id, copied.stored.size_bytes, probe.duration_s)

    def _copy_progress(self, job_id: str) -> OnProgress:
        """Persists how far a copy has got (`Job.copy_bytes`), so any API process shows it: the first
        chunk, then at most every COPY_PROGRESS_EVERY_S, and the whole body. A failed write is only a
        stale bar: it never fails the copy."""
        last = [-math.inf]

        async def record(received: int, declared: int | None) -> None:
            now = time.monotonic()
            if now - last[0] < COPY_PROGRESS_EVERY_S and received != declared:
                return
            last[0] = now
            try:
                async with self._sessions.begin() as session:
                    await repository.set_copy_progress(session, job_id, received, declared)
            except Exception:
                log.warning("job %s: could not record the copy's progress", job_id, exc_info=True)

        return record

    async def _copy_failed(self, job: Job, exc: CopyError) -> None:
        # The whole story goes to the log (and `last_error`); clients see `exc.message`, which names no path.
        log.warning(
            "job %s: copying the video failed (%s, %s): %s",
            job.id,
            exc.code,
            "will retry" if exc.transient else "permanent",
            exc.detail,
        )
        if not exc.transient:
            await self._fail(job, exc.code, exc.message)
            return
        if exc.needed_bytes is not None:
            self._space.record_full(exc.message, exc.needed_bytes)
        expires = job.video_source_expires_at
        if expires is not None and utcnow() >= expires:
            # The last try began in time but failed after the URL died: nothing can be retried now.
            await self._fail(
                job,
                "video_url_expired",
                f"the upstream video URL expired before it was copied (last error: {exc.code}: "
                f"{exc.message})",
            )
            return
        error = f"copy: {exc.code}: {exc.detail}"
        reason = {"code": exc.code, "message": exc.message}
        fresh = await self._fresh_video_url(job)
        if fresh and fresh != job.video_source_url:
            log.info("job %s: upstream gave a new video URL; copying from it", job.id)
            await self._release(
                job,
                video_source_url=fresh,
                video_source_expires_at=parse_url_expiry(fresh) or expires,
                last_error=error[:2000],
                retry_reason=reason,
                next_attempt_at=utcnow(),
            )
        else:
            await self._retry_later(job, error, exc.retry_after_s, reason=reason)

    async def _fresh_video_url(self, job: Job) -> str | None:
        """The task's current video URL. A copy that keeps failing may hold a URL that no longer works
        while the task still has a good one (the sandbox's changes when the gateway restarts)."""
        assert job.task_id is not None
        try:
            task = await self._accounts.of(job.account).get(job.task_id)
        except ProviderError as exc:
            await self.health.observe(job.account, exc)
            return None
        return task.video_url if task.state is TaskState.SUCCEEDED else None
