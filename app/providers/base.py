"""The seam between the job domain and an upstream video service.

`jobs/` speaks only these neutral types; `providers/dashscope/` is the one implementation (and the sandbox
is an emulator of DashScope, reached through that same implementation over loopback HTTP).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class TaskState(StrEnum):
    """Upstream task states (docs/PROTOCOL.md §3)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        return self not in (TaskState.PENDING, TaskState.RUNNING)


@dataclass(frozen=True)
class ImageInput:
    """A reference image: `uri` is what is sent upstream, plus what was learnt by decoding it.

    An http(s) URL the gateway fetched is sent as a `data:` URI of the checked bytes; `source_url` keeps
    the URL the client gave, which is what the job echoes.
    """

    uri: str
    sha256: str | None = None
    mime: str | None = None
    width: int | None = None
    height: int | None = None
    size_bytes: int | None = None
    source_url: str | None = None

    def describe(self) -> dict[str, Any]:
        """A loggable/echoable description: data: URIs are never repeated in full."""
        if self.source_url is not None:
            return {
                "kind": "url",
                "url": self.source_url,
                "fetched": True,
                "mime": self.mime,
                "bytes": self.size_bytes,
                "sha256": self.sha256,
                "width": self.width,
                "height": self.height,
            }
        if self.uri.startswith("data:"):
            return {
                "kind": "data_uri",
                "mime": self.mime,
                "bytes": self.size_bytes,
                "sha256": self.sha256,
                "width": self.width,
                "height": self.height,
            }
        return {"kind": "url", "url": self.uri, "width": self.width, "height": self.height}


@dataclass(frozen=True, kw_only=True)
class VideoRequest:
    """A normalized `video.generate` request (seed 004) plus DashScope options, types already checked.

    This is the one definition of the generation fields: the API body (`jobs/schemas.JobCreate`) declares
    a field of the same name for each (with its limits and documentation), and the job's echo and
    cache key are derived from these fields (`jobs/intake.py`, `jobs/fingerprint.py`), in this order.
    """

    model: str
    prompt: str | None = None
    negative_prompt: str | None = None
    duration: float | None = None
    fps: float | None = None
    size: tuple[int, int] | None = None
    resolution: str | None = None
    seed: int | None = None
    reference_image: ImageInput
    last_frame_image: ImageInput | None = None
    motion_strength: float | None = None
    audio_url: str | None = None
    audio: bool | None = None
    shot_type: str | None = None
    prompt_extend: bool | None = None
    watermark: bool | None = None
    template: str | None = None


@dataclass(frozen=True)
class Submission:
    """What will be sent upstream for one job, decided (and validated) before the job is stored."""

    model: str
    limit_group: str
    body: dict[str, Any]
    resolution: str
    duration: int
    fps: int
    has_audio: bool
    expected_size: tuple[int, int] | None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SubmitReceipt:
    task_id: str
    request_id: str | None
    state: TaskState


@dataclass(frozen=True)
class ProviderTask:
    """One upstream task as last seen."""

    task_id: str
    state: TaskState
    request_id: str | None = None
    # Upstream's own text (`YYYY-MM-DD HH:mm:ss.SSS`, zone unstated by the docs): kept verbatim.
    submit_time: str | None = None
    scheduled_time: str | None = None
    end_time: str | None = None
    video_url: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    code: str | None = None
    message: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ListedTask:
    """A row of the upstream task list, used to reconcile an ambiguous create."""

    task_id: str
    model: str | None
    state: TaskState
    created_at: datetime | None
    request_id: str | None = None


class InvalidInput(Exception):
    """A request the upstream would refuse; raised before anything is stored or sent."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ProviderError(Exception):
    """An upstream call failed. `status` is the HTTP status (0 for transport errors)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}" if self.status else "transport", self.code or "", self.message]
        return " ".join(p for p in parts if p)


class TransientError(ProviderError):
    """Worth retrying later: 408, 429, 5xx, non-JSON bodies, transport errors.

    `maybe_created` is true when a create request may have reached the service (a timeout after sending,
    a 5xx): the job must be reconciled through the task list before any resubmit. `sent_at` is when the
    request went out (after any rate-limit wait), to search the task list around the right moment.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        maybe_created: bool = False,
        sent_at: datetime | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.retry_after = retry_after
        self.maybe_created = maybe_created
        self.sent_at = sent_at


class PermanentError(ProviderError):
    """The request itself is wrong (the 4xx codes of docs/PROTOCOL.md §5): retrying cannot help."""


class VideoProvider(Protocol):
    """What the job domain needs from an upstream video service."""

    def prepare(self, request: VideoRequest) -> Submission:
        """Validate against the model's capabilities and build the upstream body. Raises InvalidInput."""
        ...

    async def submit(self, submission_body: Mapping[str, Any]) -> SubmitReceipt:
        """Create the task. Never retried internally: the caller decides (see TransientError)."""
        ...

    async def get(self, task_id: str) -> ProviderTask: ...

    async def cancel(self, task_id: str) -> None:
        """Cancel a PENDING task; PermanentError(code='UnsupportedOperation') when it is not PENDING."""
        ...

    async def list_tasks(self, model: str, start: datetime, end: datetime) -> list[ListedTask]:
        """Every task of `model` created in [start, end] (all pages)."""
        ...


class _UnconfiguredAccount:
    """The provider of a job bound to an account that is no longer configured: every call is refused
    (never sent through another account, which does not know the task)."""

    def __init__(self, name: str) -> None:
        self._why = f"upstream account {name!r} is not configured (DASHSCOPE_ACCOUNTS)"

    def prepare(self, request: VideoRequest) -> Submission:
        raise PermanentError(self._why, code="AccountNotConfigured")

    async def submit(self, submission_body: Mapping[str, Any]) -> SubmitReceipt:
        raise PermanentError(self._why, code="AccountNotConfigured")

    async def get(self, task_id: str) -> ProviderTask:
        raise PermanentError(self._why, code="AccountNotConfigured")

    async def cancel(self, task_id: str) -> None:
        raise PermanentError(self._why, code="AccountNotConfigured")

    async def list_tasks(self, model: str, start: datetime, end: datetime) -> list[ListedTask]:
        raise PermanentError(self._why, code="AccountNotConfigured")


class AccountPool:
    """The upstream accounts jobs are placed on, in placement order: name → provider.

    A single account (no DASHSCOPE_ACCOUNTS) has the name None, which is what `jobs.account` holds for
    its jobs, so the default deployment's rows and queries are what they always were.
    """

    def __init__(self, accounts: Sequence[tuple[str | None, VideoProvider]]) -> None:
        if not accounts:
            raise ValueError("an account pool needs at least one account")
        self._accounts = dict(accounts)
        if len(self._accounts) != len(accounts):
            raise ValueError("account names must be unique")

    @classmethod
    def single(cls, provider: VideoProvider) -> AccountPool:
        return cls([(None, provider)])

    @property
    def names(self) -> list[str | None]:
        return list(self._accounts)

    @property
    def pooled(self) -> bool:
        """Several named accounts (DASHSCOPE_ACCOUNTS), rather than the single default one."""
        return None not in self._accounts

    @property
    def first(self) -> VideoProvider:
        """For what is the same on every account (`prepare`)."""
        return next(iter(self._accounts.values()))

    def of(self, name: str | None) -> VideoProvider:
        """The provider of the account a job is bound to (`jobs.account`)."""
        provider = self._accounts.get(name)
        if provider is None:
            return _UnconfiguredAccount(str(name))
        return provider
