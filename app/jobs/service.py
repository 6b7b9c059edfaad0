"""Job use cases for the API: create (validate, store, never call upstream), read, list, cancel, delete.

Each method is one unit of work: it opens and commits its own transaction, and announces the jobs whose
status changed (`ChangeFeed`) after the commit. Upstream is touched only by `cancel`, for a task that is
still PENDING there.

`submit` is orchestration only: the `Idempotency-Key` (`idempotency.py`: a replay returns the job the key
made), intake (`intake.py`: the request validated into a submission and its echo), result reuse
(`reuse.py`: an identical seeded request gets a succeeded job's stored video, or follows an identical
running job), quota admission (`admission.py`) and the job's first status with its event and deliveries
(`transitions.py`), all of the last three in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import logcontext
from app.db.base import utcnow
from app.errors import Conflict, FieldError, NotFound, ServiceUnavailable
from app.jobs import admission, pacing, repository
from app.jobs import schemas as api
from app.jobs.estimates import Estimator, Live
from app.jobs.feed import ChangeFeed, wait_changed
from app.jobs.fetch import ImageFetcher
from app.jobs.idempotency import IdempotencyKeys
from app.jobs.images import ImageChecker
from app.jobs.intake import Intake, new_job
from app.jobs.models import Job, JobEvent, plausible_id
from app.jobs.reuse import ResultReuse
from app.jobs.states import JobStatus
from app.jobs.transitions import Transitions
from app.netguard import Resolver
from app.providers.base import AccountPool, PermanentError, TransientError, VideoProvider
from app.providers.health import AccountHealth
from app.storage.base import Storage, StorageError
from app.storage.renditions import rendition_keys
from app.telemetry import tracing
from app.tenants.quotas import QuotaLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    """Built from Settings by app/wiring.py; no defaults here, so each is written once (app/config.py)."""

    job_deadline_s: float
    allow_private_urls: bool
    change_poll_interval_s: float
    idempotency_ttl_s: float
    result_cache: bool
    #: POLL_MIN_INTERVAL_S / POLL_MAX_INTERVAL_S: the bounds of the wait suggested to polling clients.
    poll_min_s: float
    poll_max_s: float
    #: STORAGE_RETENTION_S (None: stored videos are kept forever).
    storage_retention_s: float | None
    #: UPSTREAM_MAX_INFLIGHT: each family's upstream slots per account, for queued jobs' ETAs.
    max_inflight: Mapping[str, int]


@dataclass(frozen=True)
class Created:
    job: Job
    #: An `Idempotency-Key` replay: the job an earlier request with this key created (nothing new was made).
    replayed: bool = False
    #: The submitter's per-minute quota window after this job, for `RateLimit-*` headers.
    window: admission.Window | None = None


class JobService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        provider: VideoProvider,
        config: ServiceConfig,
        *,
        transitions: Transitions,
        feed: ChangeFeed,
        fetcher: ImageFetcher,
        images: ImageChecker,
        storage: Storage,
        on_created: Callable[[], None] = lambda: None,
        resolver: Resolver | None = None,
        reads: async_sessionmaker[AsyncSession] | None = None,
        accounts: AccountPool | None = None,
        health: AccountHealth | None = None,
    ) -> None:
        self._sessions = sessions
        #: A cancel refused for the account's key takes the account out of rotation (providers/health.py).
        self._health = health
        # Reads of one statement each (get, list, events): autocommit, no write lock (db/engine.py).
        self._reads = reads or sessions
        # `provider` prepares requests (the same on every account); cancels go to the job's own account.
        self._accounts = accounts or AccountPool.single(provider)
        self._config = config
        self._transitions = transitions
        self._feed = feed
        self._on_created = on_created
        self._intake = Intake(
            provider, images, fetcher, allow_private_urls=config.allow_private_urls, resolver=resolver
        )
        self._storage = storage
        self._reuse = ResultReuse(sessions, storage, enabled=config.result_cache)
        self._keys = IdempotencyKeys(sessions, ttl_s=config.idempotency_ttl_s)
        #: Learnt run times and the live view of jobs (progress, queue position, ETA).
        self.estimates = Estimator(
            self._reads, max_inflight=config.max_inflight, accounts=len(self._accounts.names)
        )
        feed.subscribe(self.estimates.queues_changed)

    # --- create -------------------------------------------------------------------------------
    async def create(
        self,
        body: api.JobCreate,
        *,
        owner: str | None = None,
        api_key: str | None = None,
        limits: QuotaLimits | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        return (
            await self.submit(
                body, owner=owner, api_key=api_key, limits=limits, idempotency_key=idempotency_key
            )
        ).job

    async def submit(
        self,
        body: api.JobCreate,
        *,
        owner: str | None = None,
        api_key: str | None = None,
        limits: QuotaLimits | None = None,
        idempotency_key: str | None = None,
    ) -> Created:
        """Store a new job for `owner` (the tenant), made with the key named `api_key`, within its quota
        `limits`, if any (or, with an `Idempotency-Key` already used for this body, return its job)."""
        with logcontext.bind(tenant=owner):  # every line of the submit names the tenant, then the job
            async with self._keys.hold(owner, idempotency_key, body) as held:
                if held.replay is not None:
                    return Created(held.replay, replayed=True)
                accepted = await self._intake.accept(body)
                lookup = await self._reuse.look(owner, accepted.cache_key, wanted=body.cache)
                now = utcnow()
                job = new_job(
                    body,
                    accepted,
                    owner=owner,
                    api_key=api_key,
                    idempotency_key=held.key,
                    now=now,
                    deadline_s=self._config.job_deadline_s,
                )
                job.traceparent = tracing.current_traceparent()
                window = None
                async with self._sessions.begin() as session:
                    await self._reuse.apply(session, job, lookup, now)
                    if limits is not None and owner is not None:
                        # The estimate the insert stores is what the budget reserves: priced first.
                        self._transitions.price(job)
                        charge = None
                        if job.cost_micros is not None and job.cost is not None:
                            charge = admission.Charge(job.cost_micros, str(job.cost.get("currency", "")))
                        window = await admission.admit(session, owner, limits, job.video_seconds, now, charge)
                    changed = await self._transitions.insert(session, job)
                    await held.link(session, job)
                logcontext.update(job_id=job.id)  # given by the insert
            tracing.name_job(job.id)
            if job.cached:
                log.info("job %s reuses the video of job %s", job.id, job.source_job_id)
            elif job.source_job_id:
                log.info("job %s follows the identical job %s", job.id, job.source_job_id)
            else:
                log.info("job %s queued (model=%s)", job.id, job.model)
            self._feed.notify(*changed.jobs)
            if job.source_job_id is None:
                self._on_created()
            return Created(job, window=window)

    # --- read ---------------------------------------------------------------------------------
    async def get(self, job_id: str, *, owner: repository.Scope = None) -> Job:
        """The job as its owner sees it (without the body sent upstream: `repository.CLIENT_VIEW`)."""
        if not plausible_id(job_id):
            raise NotFound(f"no job {job_id[:100]!r}")
        async with self._reads() as session:
            job = await repository.get(session, job_id, client_view=True)
        if job is None or not repository.in_scope(job, owner) or job.deleted_at is not None:
            raise NotFound(f"no job {job_id}")
        return job

    async def get_unscoped(self, job_id: str) -> Job:
        """The job whoever owns it, unless deleted: for a signed link, whose signature is the authority."""
        if not plausible_id(job_id):
            raise NotFound(f"no job {job_id[:100]!r}")
        async with self._reads() as session:
            job = await repository.get(session, job_id, client_view=True)
        if job is None or job.deleted_at is not None:
            raise NotFound(f"no job {job_id}")
        return job

    async def page(
        self,
        *,
        owner: repository.Scope,
        statuses: list[str] | None,
        limit: int,
        cursor: str | None,
        oldest_first: bool = False,
        model: str | None = None,
    ) -> repository.Page:
        position = None
        if cursor:
            try:
                position = repository.decode_cursor(cursor)
            except (ValueError, UnicodeDecodeError):
                raise FieldError("cursor", "not a cursor issued by this service") from None
        async with self._reads() as session:
            return await repository.list_page(
                session,
                owner=owner,
                statuses=statuses,
                limit=limit,
                cursor=position,
                oldest_first=oldest_first,
                model=model,
            )

    async def search(self, query: repository.Search) -> tuple[list[Job], int]:
        """A filtered page by offset, and the number of matches (the DashScope facade's task list)."""
        async with self._reads() as session:
            return await repository.search(session, query)

    async def cursor_after(self, job_id: str, *, owner: repository.Scope) -> str:
        """The cursor of the page after the owner's job `job_id` (lists that page by the last id seen)."""
        return repository.encode_cursor(await self.get(job_id, owner=owner))

    async def get_with_body(
        self, job_id: str, *, owner: repository.Scope = None
    ) -> tuple[Job, dict[str, Any]]:
        """The job and the body that is (or was) sent upstream for it, images as sent (a remix reuses
        them: the bytes that were checked and hashed, whatever a URL serves now)."""
        job = await self.get(job_id, owner=owner)
        async with self._reads() as session:
            full = await repository.get(session, job.id)
        if full is None or not repository.in_scope(full, owner):
            raise NotFound(f"no job {job_id}")
        return job, dict(full.upstream_body or {})

    def expires_at(self, job: Job) -> datetime | None:
        """When the job's stored video is removed by STORAGE_RETENTION_S (or was: `expired_at`); None
        when it is kept forever or there is none. Its own end plus the retention: a video another job
        still shows (result reuse) stays until that job is past retention too."""
        if job.expired_at is not None:
            return job.expired_at
        if self._config.storage_retention_s is None or job.status != JobStatus.SUCCEEDED:
            return None
        if job.finished_at is None or not job.storage_key:
            return None
        return job.finished_at + timedelta(seconds=self._config.storage_retention_s)

    # --- pacing clients -----------------------------------------------------------------------
    async def poll_after_s(self, job: Job) -> float | None:
        """How long a client polling `job` should wait before asking again; None once it has finished.

        The expected end is the job's submit (or now, while queued) plus the mean time recent jobs of the
        same kind took from submit to finish (`pacing.task_kind`, read from the database, so every
        process of a deployment agrees), or `pacing.typical_run_s` before any has finished, with a
        margin (`pacing.client_expected_end`)."""
        status = JobStatus(job.status)
        if status.terminal:
            return None
        now = utcnow()
        if status is JobStatus.STORING:
            expected_end = now  # the copy of a finished video: moments
        else:
            run_s = await self.estimates.run_s(job.model, job.request)
            expected_end = pacing.client_expected_end(
                job.submitted_at or now, run_s, min_s=self._config.poll_min_s
            )
        return pacing.client_poll_after_s(
            now=now, expected_end=expected_end, min_s=self._config.poll_min_s, max_s=self._config.poll_max_s
        )

    async def live(self, jobs: Sequence[Job]) -> dict[str, Live]:
        """Each job's progress, queue position and ETA right now, by id (`estimates.Estimator.live`)."""
        return await self.estimates.live(jobs)

    # --- cancel -------------------------------------------------------------------------------
    async def cancel(self, job_id: str, *, owner: repository.Scope = None) -> Job:
        canceled_upstream = False
        for _ in range(5):  # re-read and retry when a worker moved the job meanwhile
            job = await self.get(job_id, owner=owner)
            status = JobStatus(job.status)
            if status is JobStatus.CANCELED:
                return job
            if status.terminal:
                raise Conflict(f"the job already {status.value}", code="job_finished")
            if status is JobStatus.QUEUED and job.submit_started_at is not None:
                raise Conflict(
                    "the job is being submitted upstream; its task is being confirmed — try again shortly",
                    code="submission_in_progress",
                    headers={"Retry-After": "2"},
                )
            if status in (JobStatus.RUNNING, JobStatus.STORING) and not canceled_upstream:
                raise Conflict(
                    f"the job is {status.value}: DashScope can only cancel tasks that are still PENDING",
                    code="not_cancelable",
                )
            if status is JobStatus.SUBMITTED and job.task_id and not canceled_upstream:
                await self._cancel_upstream(job.account, job.task_id)
                canceled_upstream = True
            if await self._mark_canceled(job):
                log.info("job %s canceled", job.id)
                return job
        raise ServiceUnavailable("the job kept changing; try again", headers={"Retry-After": "1"})

    async def _cancel_upstream(self, account: str | None, task_id: str) -> None:
        try:
            await self._accounts.of(account).cancel(task_id)  # the job's own account: no other knows it
        except PermanentError as exc:
            if self._health is not None:
                await self._health.observe(account, exc)
            if exc.code == "UnsupportedOperation":
                raise Conflict(
                    "the upstream task already started: DashScope can only cancel PENDING tasks",
                    code="not_cancelable",
                ) from exc
            raise ServiceUnavailable(f"DashScope refused the cancel: {exc}", code="upstream_error") from exc
        except TransientError as exc:
            retry = str(int(exc.retry_after or 2))
            raise ServiceUnavailable(
                f"DashScope is unavailable: {exc}",
                code="upstream_unavailable",
                headers={"Retry-After": retry},
            ) from exc
        if self._health is not None:
            await self._health.accepted(account)

    async def _mark_canceled(self, job: Job) -> bool:
        now = utcnow()
        async with self._sessions.begin() as session:
            changed = await self._transitions.write(
                session,
                job,
                status=JobStatus.CANCELED,
                upstream_status="CANCELED" if job.task_id else job.upstream_status,
                finished_at=now,
                next_attempt_at=None,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        if changed is None:
            return False
        self._feed.notify(*changed.jobs)
        return True

    # --- delete -------------------------------------------------------------------------------
    async def delete(self, job_id: str, *, owner: repository.Scope) -> None:
        """Delete a finished job of `owner`: from now on it is a 404 everywhere (NotFound for an unknown,
        foreign or deleted job; Conflict `job_not_finished` for one still running: cancel it first).

        Soft: the row stays with `deleted_at` (its upstream task id keeps reconciliation from adopting
        the task for another job; its Idempotency-Key stays used), out of every read and of result
        reuse; the body sent upstream (the image's bytes) is dropped. Its stored video and renditions
        are removed when no other job shows them (result reuse shares one object among jobs), after
        the commit; a store that fails then leaves the object behind (logged), never the job."""
        for _ in range(5):  # re-read and retry when the row changed meanwhile
            job = await self.get(job_id, owner=owner)
            if not JobStatus(job.status).terminal:
                raise Conflict(
                    f"the job is {job.status}: only a finished job can be deleted; cancel it first "
                    f"(POST /v1/jobs/{job.id}/cancel)",
                    code="job_not_finished",
                )
            key = job.storage_key
            async with self._sessions.begin() as session:
                if key is not None:
                    await repository.lock_stored_object(session, key)
                if not await repository.mark_deleted(session, job, utcnow()):
                    continue
                orphaned = (
                    key is not None
                    and job.expired_at is None
                    and not await repository.object_holders(session, key)
                )
            log.info("job %s deleted", job.id)
            if orphaned:
                assert key is not None
                await self._remove_object(key)
            return
        raise ServiceUnavailable("the job kept changing; try again", headers={"Retry-After": "1"})

    async def _remove_object(self, key: str) -> None:
        for name in (key, *rendition_keys(key)):
            try:
                await self._storage.delete(name)
            except (StorageError, OSError) as exc:
                log.warning("cannot remove the stored object %s (left behind): %s", name, exc)

    # --- change waiting -------------------------------------------------------------------------
    async def events_after(self, job_id: str, after_id: int) -> list[JobEvent]:
        async with self._reads() as session:
            return await repository.events_after(session, job_id, after_id)

    async def wait_for_event(self, job: Job, seconds: float) -> Job:
        """`Prefer: wait`: return as soon as the job has moved on from `job` (the caller's copy), or after
        `seconds`."""
        async with self._reads() as session:
            seen = await repository.last_event_id(session, job.id)
        # A change between the caller's read and the line above is already inside `seen`: compare.
        current = await self.get(job.id, owner=job.owner)
        if current.status != job.status:
            return current
        deadline = time.monotonic() + seconds
        async with self._feed.watch(job.id) as changed:
            while (remaining := deadline - time.monotonic()) > 0:
                changed.clear()
                if await self.events_after(job.id, seen):
                    break
                await wait_changed(changed, min(remaining, self._config.change_poll_interval_s))
        return await self.get(job.id, owner=job.owner)
