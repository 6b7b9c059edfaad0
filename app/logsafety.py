"""Keep secrets and bulky payloads out of the logs, whatever module logs them.

Every log record passes through `redact`: known secrets (the upstream key, client keys from the
environment, webhook secrets) become `***`, so do bearer tokens, anything shaped like a key (`wg_…`,
`sk-…`, `whsec_…`; but not the sandbox's public `sk-sandbox`) and the value of a credential-shaped query
parameter (`?api_key=…`, `&token=…`, `X-Amz-Signature=…`, whatever the value looks like); a `data:` URI
keeps its header and length but not its payload. Installed once per process as the log record factory,
so it covers every logger and handler (uvicorn's, httpx's, tests'). The factory redacts the record's
string arguments too, not only the message: some formatters build their line from the arguments
(uvicorn's access formatter does: its `request_line` is made of the method, path and query string, never
of `getMessage()`), and the traceback text, which the standard formatter appends after the message.

A signed URL (DashScope's OSS result links `…?Expires=…&OSSAccessKeyId=…&Signature=…`, the sandbox's file
links, S3 presigned URLs, the gateway's own `/v1/links/…?expires=&signature=`) loses its whole query
string: the path says which object, the rest is a bearer credential and its expiry (`strip_query` does
the same for code that puts a URL into a message or an error text of its own).

The factory also copies the fields `logcontext` holds (`request_id`, `job_id`, …) onto the record, for the
formatters (`logformat`), which pass those fields and any `extra` through `redact` as well.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app import logcontext

_DATA_URI = re.compile(r"(data:[\w.+-]*/?[\w.+-]*(?:;[\w.+-]+=[\w.+-]+)*;base64,)([A-Za-z0-9+/=_-]{32,})")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_KEY_SHAPED = re.compile(r"\b(wg_|sk-|whsec_)[A-Za-z0-9._~+/=-]{6,}")
#: A query parameter whose name says it carries a credential: its value goes, whatever its shape (a client
#: key of any length, a presigned URL's signature, an OAuth token). Names are matched case-insensitively.
_CREDENTIAL_PARAM = re.compile(
    r"(?i)([?&;](?:api[_-]?key|key|access[_-]?key|secret|client[_-]?secret|password|passwd|auth|"
    r"token|access[_-]?token|refresh[_-]?token|id[_-]?token|signature|sig|"
    r"x-amz-signature|x-amz-credential|x-amz-security-token|security[_-]?token|ossaccesskeyid)=)"
    r"[^&#\s\"'<>]+"
)
#: A URL with a query string; the query goes when it carries one of `_SIGNING_PARAM`.
_URL_WITH_QUERY = re.compile(r"(?i)\b(https?://[^\s?#\"'<>]+)\?([^\s#\"'<>]*)")
_SIGNING_PARAM = re.compile(
    r"(?i)(?:^|[&;])(?:signature|sig|ossaccesskeyid|x-oss-signature|x-oss-credential|x-amz-signature|"
    r"x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|security[_-]?token)="
)
_traceback_formatter = logging.Formatter()
#: Keys that are not secrets and stay readable: the sandbox's fixed key (`sandbox.config.DEFAULT_API_KEY`),
#: which every sandbox accepts and the README prints, and which the user must be shown (`wan-gateway
#: sandbox` logs it; a worker's hint names it), and the keys of its further accounts (`sk-sandbox-2` …,
#: `SANDBOX_ACCOUNT_COUNT`), derived from it as publicly. A configured `SANDBOX_API_KEY` stays a secret.
PUBLIC_KEYS = frozenset({"sk-sandbox"})
_PUBLIC_KEY = re.compile(r"sk-sandbox(?:-[1-9][0-9]?)?")


def _public(key: str) -> bool:
    return _PUBLIC_KEY.fullmatch(key) is not None


_secrets: set[str] = set()
_installed = False


def redact(text: str) -> str:
    # Every log record passes here (an access log line is five strings and a message): each pattern runs
    # only when the text holds the literal it cannot match without, a substring test instead of a regex.
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    if "://" in text and "?" in text:
        text = _URL_WITH_QUERY.sub(_unsigned, text)
    if "data:" in text:
        text = _DATA_URI.sub(lambda m: f"{m.group(1)}<{len(m.group(2))} chars>", text)
    if "bearer" in text.lower():
        text = _BEARER.sub(r"\1***", text)
    if "=" in text:
        text = _CREDENTIAL_PARAM.sub(r"\1***", text)
    if "wg_" in text or "sk-" in text or "whsec_" in text:
        text = _KEY_SHAPED.sub(lambda m: m[0] if _public(m[0]) else f"{m[1]}***", text)
    return text


def _unsigned(match: re.Match[str]) -> str:
    return match[1] if _SIGNING_PARAM.search(match[2]) else match[0]


def strip_query(url: str) -> str:
    """`url` without its query string and fragment, for a log line or an operator's error text: a
    signed download link is a credential until it expires."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def install(secrets: Iterable[str | None] = ()) -> None:
    """Redact every log record of this process from now on; `secrets` adds exact strings to hide."""
    global _installed
    _secrets.update(s for s in secrets if s and len(s) >= 6 and not _public(s))
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.args = _redacted_args(record.args)
        record.getMessage = _redacting(record.getMessage)  # type: ignore[method-assign]
        if record.exc_info and not record.exc_text:
            # What Formatter.format would append, rendered now so that every formatter uses it redacted.
            record.exc_text = redact(_traceback_formatter.formatException(record.exc_info))
        fields = logcontext.current()
        if fields:
            record.__dict__.update(fields)
        return record

    logging.setLogRecordFactory(factory)


def _redacted_args(args: Any) -> Any:
    """String arguments redacted, the others (numbers for `%d`, objects for `%r`) untouched: their text only
    exists in the formatted message, which `getMessage` redacts."""
    if isinstance(args, tuple):
        return tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
    if isinstance(args, Mapping):
        return {key: redact(value) if isinstance(value, str) else value for key, value in args.items()}
    return args


def _redacting(get_message: Any) -> Any:
    def get() -> str:
        return redact(str(get_message()))

    return get
