"""Intake: a `JobCreate` body → a validated submission, the job's echo of it, its cache key, and the row.

Nothing is stored and upstream is never called here. The reference images are checked (http(s) URLs are
fetched first, `fetch.py`; every image is decoded in the checker's threads, `images.py`), the provider
validates the request against the model and builds what will be sent (`prepare`), and the webhook URL is
vetted (netguard). Any refusal is a `FieldError` naming the field (422).

The generation fields are defined once, by `providers.base.VideoRequest`: the body's fields of the same
names are copied into it by name, and the echo (`Job.request`) and the cache key are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from app.errors import FieldError, ServiceUnavailable
from app.jobs.fetch import ImageFetcher
from app.jobs.fingerprint import cache_key, settled
from app.jobs.images import ChecksBusy, ImageChecker, inspect_image
from app.jobs.models import Job
from app.jobs.schemas import JobCreate, parse_size
from app.jobs.states import TERMINAL_EVENTS, JobStatus
from app.netguard import Resolver, UnsafeURL, vet_url
from app.providers.base import ImageInput, InvalidInput, Submission, VideoProvider, VideoRequest

#: Generation fields the body gives in another form: images as URIs (checked into `ImageInput`s here),
#: `size` as `WIDTH*HEIGHT` text (parsed). Every other `VideoRequest` field is the body's, as it is.
_CONVERTED = frozenset({"reference_image", "last_frame_image", "size"})
#: `VideoRequest` fields copied from the body as they are.
PLAIN_FIELDS = tuple(f.name for f in fields(VideoRequest) if f.name not in _CONVERTED)


@dataclass(frozen=True)
class Accepted:
    """A request that passed intake: what the provider will render and send, and how the job shows it."""

    request: VideoRequest
    submission: Submission
    #: The job's `request`: the normalized request, images described (never repeated), nulls left out.
    echo: dict[str, Any]
    #: What identifies the video for result reuse (`fingerprint.cache_key`); None: never reused.
    cache_key: str | None


class Intake:
    def __init__(
        self,
        provider: VideoProvider,
        images: ImageChecker,
        fetcher: ImageFetcher,
        *,
        allow_private_urls: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        self._provider = provider
        self._images = images
        self._fetcher = fetcher
        self._allow_private_urls = allow_private_urls
        self._resolver = resolver

    async def accept(self, body: JobCreate) -> Accepted:
        """Validate `body` all the way (FieldError naming the field, or 503 when the image checkers stay
        busy)."""
        request = await self._request(body)
        try:
            submission = self._provider.prepare(request)
        except InvalidInput as exc:
            raise FieldError(exc.field, exc.message) from exc
        if body.webhook_url is not None:
            try:
                await vet_url(
                    body.webhook_url, allow_private=self._allow_private_urls, resolver=self._resolver
                )
            except UnsafeURL as exc:
                raise FieldError("webhook_url", exc.reason) from exc
        return Accepted(
            request=request,
            submission=submission,
            echo=echo(request, submission, size_text=body.size),
            cache_key=cache_key(request, submission),
        )

    async def _request(self, body: JobCreate) -> VideoRequest:
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
        return to_request(body, reference, last)


def to_request(body: JobCreate, reference: ImageInput, last: ImageInput | None) -> VideoRequest:
    """The body as a `VideoRequest`, with its images checked."""
    plain: dict[str, Any] = {name: getattr(body, name) for name in PLAIN_FIELDS}
    return VideoRequest(
        **plain,
        reference_image=reference,
        last_frame_image=last,
        size=parse_size(body.size) if body.size else None,
    )


def echo(request: VideoRequest, submission: Submission, *, size_text: str | None) -> dict[str, Any]:
    """The job's `request`: the generation fields as the provider settled them (duration, fps, tier),
    `size` as the client wrote it, images described, what the video will be (sound, frame size); the
    model is the job's own field. Nulls are left out."""
    document = settled(request, submission)
    del document["model"]
    document["size"] = size_text
    shown: dict[str, Any] = {}
    for name, value in document.items():
        shown[name] = value.describe() if isinstance(value, ImageInput) else value
        if name == "audio":  # beside what was asked, where the echo has always shown it
            shown["has_audio"] = submission.has_audio
    expected = submission.expected_size
    shown["expected_size"] = f"{expected[0]}*{expected[1]}" if expected else None
    return {name: value for name, value in shown.items() if value is not None}


def new_job(
    body: JobCreate,
    accepted: Accepted,
    *,
    owner: str | None,
    api_key: str | None = None,
    idempotency_key: str | None,
    now: datetime,
    deadline_s: float,
) -> Job:
    """The row of a new job, queued, due now (result reuse may still make it a copy or a follower)."""
    submission = accepted.submission
    return Job(
        owner=owner,
        api_key=api_key,
        idempotency_key=idempotency_key,
        cache_key=accepted.cache_key,
        status=JobStatus.QUEUED,
        version=0,
        model=submission.model,
        limit_group=submission.limit_group,
        request=accepted.echo,
        upstream_body=submission.body,
        warnings=submission.warnings,
        meta=body.metadata,
        video_seconds=float(submission.duration or 0),
        webhook_url=body.webhook_url,
        webhook_events=(list(body.webhook_events or TERMINAL_EVENTS) if body.webhook_url else None),
        next_attempt_at=now,
        deadline_at=now + timedelta(seconds=deadline_s),
        created_at=now,
        updated_at=now,
    )
