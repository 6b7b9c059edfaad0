"""The two log formats (`LOG_FORMAT`): `text` for a terminal, `json` (one object per line) for a collector.

- **text**: `2026-12-02 04:29:25,476 INFO app.jobs.poller [job_id=job_… tenant=alice upstream_task_id=…]:
  job job_… submitted as task …`: the `logcontext` fields bound where the line was written, in a fixed
  order, between brackets (none: no brackets), then the message.
- **json**: python-json-logger's formatter, one object per line: `timestamp` (ISO-8601 UTC), `level`,
  `logger`, `message`, the `logcontext` fields, whatever the call passed as `extra` (the access line's
  `method`, `path`, `status`, `duration_ms`, `client`), and `exc_info` (the traceback) when there is one.

Both keep `logsafety`'s guarantees: the message, its arguments and the traceback are redacted when the
record is made; what a formatter adds from the record (the context fields, the extras, a traceback it
renders itself) passes `redact` here, every string of it (nested in dicts and lists too).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from app import logcontext
from app.logsafety import redact

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"

#: Record attributes that are not fields of a line: the standard ones, the redactor's per-record
#: `getMessage`, uvicorn's colored copy of its message.
_NOT_FIELDS = frozenset([*RESERVED_ATTRS, "getMessage", "color_message", "context"])
_REDACTED_ALREADY = frozenset({"message", "level", "logger"})


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


class TextFormatter(logging.Formatter):
    """The standard formatter with the context token (`[request_id=… job_id=…]`) after the logger name."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        # Each value redacted alone: the joined token has `=` in it, which would run the query pattern.
        tokens = " ".join(f"{name}={redact(fields[name])}" for name in logcontext.FIELDS if fields.get(name))
        record.context = f" [{tokens}]" if tokens else ""
        return super().format(record)


class JsonFormatter(_JsonFormatter):
    """python-json-logger's formatter with the gateway's field names, every string value redacted."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
            reserved_attrs=list(_NOT_FIELDS),
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # The time first, for a reader; then what the call wrote, every string redacted but the message
        # (redacted with its arguments when the record was made) and the level and logger names.
        ordered = {"timestamp": log_data.pop("timestamp", None)}
        for key, value in log_data.items():
            ordered[key] = value if key in _REDACTED_ALREADY else _redacted(value)
        return ordered


def formatter(name: str) -> logging.Formatter:
    """The formatter of `LOG_FORMAT=name`."""
    if name == "json":
        return JsonFormatter()
    if name == "text":
        return TextFormatter()
    raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {name!r}")
