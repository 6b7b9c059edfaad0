"""The job as clients see it: the one rendering used by GET, lists, server-sent events and webhooks.

What changes by the second (`progress`, `queue_position`, `eta`) comes in as a `Live` from
`estimates.Estimator`, which reads the database; without one (status events and webhooks, rendered inside
the transition's transaction) progress uses the typical run time and the queue fields are null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.jobs import schemas as api
from app.jobs.delivery import delivery_warnings
from app.jobs.estimates import Live, progress
from app.jobs.models import Job
from app.jobs.states import JobStatus

__all__ = ["LinkIssuer", "Presenter", "progress", "retry"]


class LinkIssuer(Protocol):
    """What hands out signed, key-less download links (app/links.py's `LinkSigner`)."""

    def signed(self, job_id: str, variant: Any = "video") -> tuple[str, datetime]: ...


@dataclass(frozen=True)
class Presenter:
    public_base_url: str
    #: Signed links for `result.signed_url`; None: no signed links (the result has none).
    links: LinkIssuer | None = None

    def video_link(self, job_id: str) -> str:
        """A URL of the stored video that needs no key: the signed link, or `/content` without a signer."""
        return self.links.signed(job_id)[0] if self.links is not None else self.content_url(job_id)

    def content_url(self, job_id: str) -> str:
        return f"{self.public_base_url}/v1/jobs/{job_id}/content"

    def thumbnail_url(self, job_id: str) -> str:
        return f"{self.public_base_url}/v1/jobs/{job_id}/thumbnail"

    def job(self, job: Job, live: Live | None = None) -> api.Job:
        """The job; `live`: its progress, queue position and ETA right now (default: no estimates)."""
        live = live or Live(progress(job))
        upstream_doc = dict(job.upstream or {})
        usage = upstream_doc.pop("usage", None)
        upstream = None
        if job.task_id or upstream_doc:
            upstream = api.UpstreamInfo(task_id=job.task_id, status=job.upstream_status, **upstream_doc)
        result = None
        if job.result:
            signed_url, signed_expires = self.links.signed(job.id) if self.links else (None, None)
            result = api.JobResult(
                video_url=self.content_url(job.id),
                signed_url=signed_url,
                signed_url_expires_at=signed_expires,
                expired_at=job.expired_at,
                **job.result,
            )
        return api.Job(
            id=job.id,
            status=job.status,
            model=job.model,
            tenant=job.owner,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
            progress=live.progress,
            queue_position=live.queue_position,
            eta=live.eta,
            request=job.request,
            upstream=upstream,
            result=result,
            error=api.JobError(**job.error) if job.error else None,
            retry=retry(job),
            usage=usage,
            cost=api.JobCost(**job.cost, price_version=job.price_version or "") if job.cost else None,
            warnings=[*(job.warnings or []), *delivery_warnings(job.request, job.result)],
            metadata=job.meta,
            webhook_url=job.webhook_url,
            webhook_events=job.webhook_events,
            cached=job.cached,
            source_job_id=job.source_job_id,
        )

    def job_json(self, job: Job, live: Live | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self.job(job, live).model_dump(mode="json")
        return data


def retry(job: Job) -> api.JobRetry | None:
    """The transient failure a job that has not finished is waiting out, in its client-safe words."""
    reason = job.retry_reason
    if not reason or JobStatus(job.status).terminal:
        return None
    return api.JobRetry(
        reason=str(reason.get("code", "temporary_error")),
        message=str(reason.get("message", "")),
        attempts=job.retry_count,
        next_attempt_at=job.next_attempt_at,
    )
