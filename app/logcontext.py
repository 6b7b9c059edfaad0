"""The ids every log line carries while the gateway works on something: a request, a job, a delivery.

A context variable holds the fields (`request_id`, `job_id`, `tenant`, `upstream_task_id`,
`upstream_request_id`, `delivery_id`); `bind(...)` sets some for the duration of a block (a request,
a poller's step on one job, a webhook delivery), `update(...)` adds what a step learns meanwhile (the
upstream task id once the create is answered). The log record factory (`logsafety.install`) copies them
onto every record made in that context, so the formatters (`logformat`) write them as fields in JSON
and as a `[request_id=… job_id=…]` token in text, and no log call names them itself. asyncio copies
the context into every task it creates, so the lines of work started from a request carry its id.

`request_id` is the gateway's own (taken from the client's `X-Request-ID` when it is safe, else
generated: `request_id_from`); `upstream_request_id` is DashScope's `request_id` from its answers.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Protocol

#: The fields, in the order the text format writes them.
FIELDS = ("request_id", "job_id", "tenant", "upstream_task_id", "upstream_request_id", "delivery_id")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_fields: ContextVar[Mapping[str, str]] = ContextVar("log_fields", default=_EMPTY)

#: A client's `X-Request-ID` is kept when it is this shape (a UUID, a ULID, a trace id, `req-42`): bounded,
#: and nothing that could break a log line or a header (no spaces, quotes, control characters).
MAX_REQUEST_ID = 128
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=@/-]{0,127}")


def current() -> Mapping[str, str]:
    """The fields bound in this context (empty outside any request or job)."""
    return _fields.get()


def _clean(fields: Mapping[str, Any]) -> dict[str, str]:
    # Not redacted here: the formatters pass every field through the redactor (`logformat`).
    return {key: str(value) for key, value in fields.items() if value is not None and value != ""}


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add `fields` (None values skipped) to every log line written inside the block."""
    token = _fields.set(MappingProxyType({**_fields.get(), **_clean(fields)}))
    try:
        yield
    finally:
        _fields.reset(token)


def update(**fields: Any) -> None:
    """Add `fields` to the current context until the enclosing `bind` ends (or the task does)."""
    _fields.set(MappingProxyType({**_fields.get(), **_clean(fields)}))


class JobLike(Protocol):
    """What `job_fields` reads of a job (`jobs.models.Job` is one); no import of the domain here."""

    @property
    def id(self) -> str: ...

    @property
    def owner(self) -> str | None: ...

    @property
    def task_id(self) -> str | None: ...

    @property
    def upstream(self) -> dict[str, Any] | None: ...


def job_fields(job: JobLike) -> dict[str, Any]:
    """A job's ids, as far as they are known: `bind(**job_fields(job))`."""
    return {
        "job_id": job.id,
        "tenant": job.owner,
        "upstream_task_id": job.task_id,
        "upstream_request_id": (job.upstream or {}).get("request_id"),
    }


def new_request_id() -> str:
    """A fresh request id: 16 hex characters (64 random bits)."""
    return secrets.token_hex(8)


def request_id_from(header: bytes | None) -> str:
    """The client's `X-Request-ID` when it is safe to echo and log, else a new one."""
    if header is not None and len(header) <= MAX_REQUEST_ID:
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            return new_request_id()
        if _SAFE_REQUEST_ID.fullmatch(text):
            return text
    return new_request_id()
