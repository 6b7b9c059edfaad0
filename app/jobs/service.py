"""Job use cases for the API: create (validate, store, never call upstream), read, list, cancel.

Each method is one unit of work: it opens and commits its own transaction. Upstream is touched only by
`cancel`, for a task that is still PENDING there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import TERMINAL_EVENTS
from app.db.base import utcnow
from app.errors import Conflict, FieldError, NotFound, ServiceUnavailable
from app.jobs import repository
from app.jobs import schemas as api
from app.jobs.feed import ChangeFeed, wait_changed
from app.jobs.images import ImageLimits, inspect_image
from app.jobs.models import Job, JobEvent, plausible_id
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
from app.webhooks import repository as webhook_repository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    job_deadline_s: float
    image_limits: ImageLimits
    allow_private_urls: bool = False
    change_poll_interval_s: float = 1.0


class JobService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        provider: VideoProvider,
        config: ServiceConfig,
        *,
        outbox: Outbox,
        feed: ChangeFeed,
        on_created: Callable[[], None] = lambda: None,
        resolver: Resolver | None = None,
    ) -> None:
        self._sessions = sessions
        self._provider = provider
        self._config = config
        self._outbox = outbox
        self._feed = feed
        self._on_created = on_created
        self._resolver = resolver

    # --- create -------------------------------------------------------------------------------
    def _to_request(self, body: api.JobCreate) -> VideoRequest:
        limits = self._config.image_limits
        try:
            reference = inspect_image(body.reference_image, "reference_image", limits)
            last = (
                inspect_image(body.last_frame_image, "last_frame_image", limits)
                if body.last_frame_image is not None
                else None
            )
        except InvalidInput as exc:
            raise FieldError(exc.field, exc.message) from exc
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

    async def create(self, body: api.JobCreate, *, owner: str | None = None) -> Job:
        request = self._to_request(body)
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
        now = utcnow()
        job = Job(
            owner=owner,
            status=JobStatus.QUEUED.value,
            version=0,
            model=submission.model,
            limit_group=submission.limit_group,
            request={k: v for k, v in echo.items() if v is not None},
            upstream_body=submission.body,
            warnings=submission.warnings,
            meta=body.metadata,
            webhook_url=body.webhook_url,
            webhook_events=(list(body.webhook_events or TERMINAL_EVENTS) if body.webhook_url else None),
            next_attempt_at=now,
            deadline_at=now + timedelta(seconds=self._config.job_deadline_s),
            created_at=now,
            updated_at=now,
        )
        async with self._sessions.begin() as session:
            await repository.insert(session, job)
            await self._outbox.record(session, job)
            if job.webhook_url:
                await webhook_repository.rearm(session, job.webhook_url)
        log.info("job %s queued (model=%s)", job.id, job.model)
        self._feed.notify(job.id)
        self._on_created()
        return job

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
        if changed:
            self._feed.notify(job.id)
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
