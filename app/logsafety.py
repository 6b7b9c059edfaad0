"""Keep secrets and bulky payloads out of the logs, whatever module logs them.

Every log record's message passes through `redact`: known secrets (the upstream key, client keys from the
environment, webhook secrets) become `***`, so do bearer tokens and anything shaped like a key (`wg_…`,
`sk-…`, `whsec_…`), and a `data:` URI keeps its header and length but not its payload. Installed once per
process as the log record factory, so it covers every logger and handler (uvicorn's, httpx's, tests').
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

_DATA_URI = re.compile(r"(data:[\w.+-]*/?[\w.+-]*(?:;[\w.+-]+=[\w.+-]+)*;base64,)([A-Za-z0-9+/=_-]{32,})")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_KEY_SHAPED = re.compile(r"\b(wg_|sk-|whsec_)[A-Za-z0-9._~+/=-]{6,}")

_secrets: set[str] = set()
_installed = False


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = _DATA_URI.sub(lambda m: f"{m.group(1)}<{len(m.group(2))} chars>", text)
    text = _BEARER.sub(r"\1***", text)
    return _KEY_SHAPED.sub(r"\1***", text)


def install(secrets: Iterable[str | None] = ()) -> None:
    """Redact every log message of this process from now on; `secrets` adds exact strings to hide."""
    global _installed
    _secrets.update(s for s in secrets if s and len(s) >= 6)
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.getMessage = _redacting(record.getMessage)  # type: ignore[method-assign]
        return record

    logging.setLogRecordFactory(factory)


def _redacting(get_message: Any) -> Any:
    def get() -> str:
        return redact(str(get_message()))

    return get
