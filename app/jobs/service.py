"""Job use cases for the API: create (validate, store, never call upstream), read, list, cancel.

Each method is one unit of work: it opens and commits its own transaction. Upstream is touched only by
`cancel`, for a task that is still PENDING there.

`create` also applies `Idempotency-Key` (a replay returns the job the key made) and result reuse (an
identical seeded request gets a succeeded job's stored video, or follows an identical running job).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import TERMINAL_EVENTS
from app.db.base import utcnow
from app.errors import Conflict, FieldError, NotFound, ServiceUnavailable
from app.jobs import idempotency, repository
from app.jobs import schemas as api
from app.jobs.feed import ChangeFeed, wait_changed
from app.jobs.fetch import ImageFetcher
from app.jobs.fingerprint import cache_key, request_fingerprint
from app.jobs.images import ChecksBusy, ImageChecker, inspect_image
from app.jobs.models import IdempotencyKey, Job, JobEvent, plausible_id
from app.jobs.outbox import Outbox
from app.jobs.states import JobStatus
from app.netguard import Resolver, UnsafeURL, vet_url
from app.providers.base import (
    InvalidInput,
    PermanentError,
    TransientError,
    VideoProvider,
    VideoRequest,
)
from app.storage.base import Storage, StorageError
from app.tenants import quotas
from app.tenants.quotas import QuotaLimits
from app.webhooks import repository as webhook_repository

log = logging.getLogger(__name__)


#: Tolerated clock difference between processes (a job another worker finished "just now").
_CLOCK_SKEW_S = 5.0


@dataclass(frozen=True)
class ServiceConfig:
    """Built from Settings by app/wiring.py; no defaults here, so each is written once (app/config.py)."""

    job_deadline_s: float
    allow_private_urls: bool
    change_poll_interval_s: float
    idempotency_ttl_s: float
    result_cache: bool


@dataclass(frozen=True)
class Created:
    job: Job
    #: An `Idempotency-Key` replay: the job an earlier request with this key created (nothing new was made).
    replayed: bool = False
    #: The submitter's per-minute quota window after this job, for `RateLimit-*` headers.
    window: quotas.Window | None = None


class JobService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        provider: VideoProvider,
        config: ServiceConfig,
        *,
        outbox: Outbox,
        feed: ChangeFeed,
        fetcher: ImageFetcher,
        images: ImageChecker,
        storage: Storage,
        on_created: Callable[[], None] = lambda: None,
        resolver: Resolver | None = None,
    ) -> None:
        self._sessions = sessions
        self._storage = storage
        self._provider = provider
        self._config = config
        self._outbox = outbox
        self._feed = feed
        self._fetcher = fetcher
        self._images = images
        self._on_created = on_created
        self._resolver = resolver

    # --- create -------------------------------------------------------------------------------
    async def _to_request(self, body: api.JobCreate) -> VideoRequest:
        images, fetcher = self._images, self._fetcher
        try:  # http(s) images are fetched here, before the job exists (app/jobs/fetch.py)
            reference = await inspect_image(body.reference_image, "reference_image", images, fetcher)
            last = (
                await inspect_image(body.last_frame_image, "last_frame_image", images, fetcher)
                if body.last_frame_image is not None
                else None
            )
        except InvalidInput as exc:
            raise FieldError(exc.field, exc.message) from exc
        except ChecksBusy as exc:
            raise ServiceUnavailable(
                str(exc), code="image_checks_busy", headers={"Retry-After": "1"}
            ) from exc
        return VideoRequest(
            model=body.model,
            reference_image=reference,
            last_frame_image=last,
            prompt=body.prompt,
            negative_prompt=body.negative_prompt,
            duration=body.duration,
            fps=body.fps,
            size=api.parse_size(body.size) if body.size else None,
            seed=body.seed,
            motion_strength=body.motion_strength,
            resolution=body.resolution,
            audio_url=body.audio_url,
            audio=body.audio,
            shot_type=body.shot_type,
            prompt_extend=body.prompt_extend,
            watermark=body.watermark,
            template=body.template,
        )

    async def create(
        self,
        body: api.JobCreate,
        *,
        owner: str | None = None,
        limits: QuotaLimits | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        return (await self.submit(body, owner=owner, limits=limits, idempotency_key=idempotency_key)).job

    async def submit(
        self,
        body: api.JobCreate,
        *,
        owner: str | None = None,
        limits: QuotaLimits | None = None,
        idempotency_key: str | None = None,
    ) -> Created:
        """Store a new job for `owner` (the tenant) within its quota `limits`, if any (or, with an
        `Idempotency-Key` already used for this body, return its job).

        The key is reserved first, in a transaction of its own, so a concurrent duplicate sees it at once
        (409 while this request is written); if anything below fails, the reservation is given back.
        """
        if idempotency_key is None:
            return await self._create(body, owner, limits, None)
        reserved = await self._reserve(owner, idempotency_key, request_fingerprint(body))
        if isinstance(reserved, Job):
            log.info("job %s replayed for its Idempotency-Key", reserved.id)
            return Created(reserved, replayed=True)
        try:
            return await self._create(body, owner, limits, reserved)
        except Exception:
            with contextlib.suppress(Exception):
                async with self._sessions.begin() as session:
                    await idempotency.release(session, reserved.id)
            raise

    async def _reserve(self, owner: str | None, key: str, fingerprint: str) -> IdempotencyKey | Job:
        """Our reservation of `key`, or the job an identical earlier request created with it."""
        tenant = idempotency.tenant_of(owner)
        for _ in range(5):
            now = utcnow()
            row = IdempotencyKey(
                tenant=tenant,
                key=key,
                fingerprint=fingerprint,
                created_at=now,
                expires_at=now + timedelta(seconds=self._config.idempotency_ttl_s),
            )
            try:
                async with self._sessions.begin() as session:
                    await idempotency.insert(session, row)
                return row
            except IntegrityError:
                pass  # the key is held: by whom, and for what?
            async with self._sessions.begin() as session:
                held = await idempotency.find(session, tenant, key)
                if held is None:
                    continue  # given back meanwhile
                abandoned = now - timedelta(seconds=idempotency.ABANDONED_AFTER_S)
                if await idempotency.delete_if_free(session, held.id, now, abandoned):
                    continue  # expired, or its request died: take the key over
                if held.fingerprint != fingerprint:
                    raise FieldError(
                        "Idempotency-Key",
                        "this key was already used with a different request body; use a new key for a "
                        "new request",
                        code="idempotency_key_reused",
                    )
                if held.job_id is None:
                    break
                job = await repository.get(session, held.job_id)
                if job is not None:
                    return job
        raise Conflict(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            code="idempotency_key_in_progress",
            headers={"Retry-After": "1"},
        )

    async def _create(
        self,
        body: api.JobCreate,
        owner: str | None,
        limits: QuotaLimits | None,
        reservation: IdempotencyKey | None,
    ) -> Created:
        request = await self._to_request(body)
        try:
            submission = self._provider.prepare(request)
        except InvalidInput as exc:
            raise FieldError(exc.field, exc.message) from exc
        if body.webhook_url is not None:
            try:
                await vet_url(
                    body.webhook_url, allow_private=self._config.allow_private_urls, resolver=self._resolver
                )
            except UnsafeURL as exc:
                raise FieldError("webhook_url", exc.reason) from exc

        echo: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "duration": submission.duration,
            "fps": submission.fps,
            "size": body.size,
            "resolution": submission.resolution,
            "seed": request.seed,
            "reference_image": request.reference_image.describe(),
            "last_frame_image": request.last_frame_image.describe() if request.last_frame_image else None,
            "motion_strength": request.motion_strength,
            "audio_url": request.audio_url,
            "audio": request.audio,
            "has_audio": submission.has_audio,
            "shot_type": request.shot_type,
            "prompt_extend": request.prompt_extend,
            "watermark": request.watermark,
            "template": request.template,
            "expected_size": "{}*{}".format(*submission.expected_size) if submission.expected_size else None,
        }
        key = cache_key(request, submission)
        reuse = key is not None and body.cache and self._config.result_cache
        looked_at = utcnow()
        source, rejected = await self._stored_result(owner, key) if reuse and key else (None, [])
        now = utcnow()
        job = Job(
            owner=owner,
            idempotency_key=reservation.key if reservation else None,
            cache_key=key,
            status=JobStatus.QUEUED.value,
            version=0,
            model=submission.model,
            limit_group=submission.limit_group,
            request={k: v for k, v in echo.items() if v is not None},
            upstream_body=submission.body,
            warnings=submission.warnings,
            meta=body.metadata,
            video_seconds=float(submission.duration or 0),
            webhook_url=body.webhook_url,
            webhook_events=(list(body.webhook_events or TERMINAL_EVENTS) if body.webhook_url else None),
            next_attempt_at=now,
            deadline_at=now + timedelta(seconds=self._config.job_deadline_s),
            created_at=now,
            updated_at=now,
        )
        window = None
        async with self._sessions.begin() as session:
            if reuse and key and source is None:
                await repository.lock_cache_key(session, owner, key)
                # Locked: it cannot end before this transaction commits, and once it has ended it is not
                # found here (so a follower is never left behind a finished job).
                original = await repository.running_original(session, owner, key)
                if original is not None:
                    job.source_job_id = original.id
                    job.next_attempt_at = job.deadline_at  # nothing to do before then but wait
                else:  # it may have succeeded since we looked (its video was stored a moment ago)
                    found = await repository.reusable_results(
                        session,
                        owner,
                        key,
                        exclude=rejected,
                        finished_since=looked_at - timedelta(seconds=_CLOCK_SKEW_S),
                        limit=1,
                    )
                    source = found[0] if found else None
            if source is not None:
                _reuse(job, source, now)
            if limits is not None and owner is not None:
                window = await quotas.admit(session, owner, limits, job.video_seconds, now)
            await repository.insert(session, job)
            await self._outbox.record(session, job)
            if reservation is not None:
                if not await idempotency.link(session, reservation.id, job.id):
                    # Our reservation was taken over (this request took over a minute): the other one wins.
                    raise Conflict(
                        "a request with this Idempotency-Key is still being processed; retry shortly",
                        code="idempotency_key_in_progress",
                        headers={"Retry-After": "1"},
                    )
                await idempotency.sweep_expired(session, now)
            if job.webhook_url:
                await webhook_repository.rearm(session, job.webhook_url)
        if job.cached:
            log.info("job %s reuses the video of job %s", job.id, job.source_job_id)
        elif job.source_job_id:
            log.info("job %s follows the identical job %s", job.id, job.source_job_id)
        else:
            log.info("job %s queued (model=%s)", job.id, job.model)
        self._feed.notify(job.id)
        if job.source_job_id is None:
            self._on_created()
        return Created(job, window=window)

    async def _stored_result(self, owner: str | None, key: str) -> tuple[Job | None, list[str]]:
        """A succeeded job of the tenant with this cache key whose video is still in storage, and the ids
        of those whose video is gone (or cannot be checked now)."""
        async with self._sessions() as session:
            candidates = await repository.reusable_results(session, owner, key)
        rejected: list[str] = []
        for candidate in candidates:
            assert candidate.storage_key is not None and candidate.result is not None
            try:
                stored = await self._storage.stat(candidate.storage_key)
            except StorageError as exc:
                log.warning("job %s: cannot check its stored video (%s); not reusing it", candidate.id, exc)
                stored = None
            if stored is not None and stored.size_bytes == candidate.result.get("bytes"):
                return candidate, rejected
            rejected.append(candidate.id)
        return None, rejected

    # --- read ---------------------------------------------------------------------------------
    async def get(self, job_id: str, *, owner: str | None = None) -> Job:
        if not plausible_id(job_id):
            raise NotFound(f"no job {job_id[:100]!r}")
        async with self._sessions() as session:
            job = await repository.get(session, job_id)
        if job is None or job.owner != owner:
            raise NotFound(f"no job {job_id}")
        return job

    async def page(
        self, *, owner: str | None, statuses: list[str] | None, limit: int, cursor: str | None
    ) -> repository.Page:
        position = None
        if cursor:
            try:
                position = repository.decode_cursor(cursor)
            except (ValueError, UnicodeDecodeError):
                raise FieldError("cursor", "not a cursor issued by this service") from None
        async with self._sessions() as session:
            return await repository.list_page(
                session, owner=owner, statuses=statuses, limit=limit, cursor=position
            )

    # --- cancel -------------------------------------------------------------------------------
    async def cancel(self, job_id: str, *, owner: str | None = None) -> Job:
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
                await self._cancel_upstream(job.task_id)
                canceled_upstream = True
            if await self._mark_canceled(job):
                log.info("job %s canceled", job.id)
                return job
        raise ServiceUnavailable("the job kept changing; try again", headers={"Retry-After": "1"})

    async def _cancel_upstream(self, task_id: str) -> None:
        try:
            await self._provider.cancel(task_id)
        except PermanentError as exc:
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

    async def _mark_canceled(self, job: Job) -> bool:
        now = utcnow()
        async with self._sessions.begin() as session:
            changed = await repository.cas_update(
                session,
                job,
                outbox=self._outbox,
                status=JobStatus.CANCELED.value,
                upstream_status="CANCELED" if job.task_id else job.upstream_status,
                finished_at=now,
                next_attempt_at=None,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
            followers = repository.resolved_followers(session)
        if changed:
            self._feed.notify(job.id)
        for follower in followers:
            self._feed.notify(follower)
        return changed

    # --- change waiting -------------------------------------------------------------------------
    async def events_after(self, job_id: str, after_id: int) -> list[JobEvent]:
        async with self._sessions() as session:
            return await repository.events_after(session, job_id, after_id)

    async def wait_for_event(self, job: Job, seconds: float) -> Job:
        """`Prefer: wait`: return as soon as the job has moved on from `job` (the caller's copy), or after
        `seconds`."""
        async with self._sessions() as session:
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


def _reuse(job: Job, source: Job, now: datetime) -> None:
    """Make the new `job` a finished copy of `source`'s result: the same stored object, no upstream task."""
    job.status = JobStatus.SUCCEEDED.value
    job.source_job_id = source.id
    job.storage_key = source.storage_key
    job.result = dict(source.result or {})
    job.upstream_body = None  # never sent
    job.video_seconds = 0.0  # so it costs no quota either
    job.next_attempt_at = None
    job.finished_at = now
