"""Declarative base, naming convention and the column types every table uses: UTC datetimes, JSON
documents, string enums, and text that may come from outside (made storable on every database, see
`storable`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from sqlalchemy import JSON, DateTime, Dialect, MetaData, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive text; we re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite compares datetimes as text: store them naive and uniform so ordering is right.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class StrEnumColumn(TypeDecorator[E]):
    """A `StrEnum` stored as its value in a VARCHAR: reads give the enum member, writes take a member or
    its value (and refuse anything else). No CHECK constraint and no native enum type, so adding a
    member needs no migration, and the column is the plain string column it always was."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[E], length: int) -> None:
        super().__init__(length)
        self.enum_class = enum_class

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_class(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_class(value)


def rowcount(result: Any) -> int:
    """Rows an UPDATE/DELETE matched (its Result is a CursorResult)."""
    return int(result.rowcount)


#: What no database stores as text: U+0000 (PostgreSQL refuses it in text and JSONB; SQLite keeps it but
#: its functions stop there) and surrogates (a lone one, as JSON's `\ud800` escape decodes, cannot be
#: encoded as UTF-8: SQLite, PostgreSQL and our own JSON answers all fail on it).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """`text` with U+0000 and surrogates replaced by U+FFFD, the rest unchanged."""
    if text.isascii() and "\x00" not in text:  # the common case, without a regex pass over data: URIs
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable_json(value: Any) -> Any:
    """A JSON document with `storable` applied to every string in it, keys included."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(k) if isinstance(k, str) else k: storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(item) for item in value]
    return value


class _StorableStr(TypeDecorator[str]):
    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else storable(value)


class StorableText(_StorableStr):
    """Text that may come from outside — upstream answers, webhook receivers, error messages quoting
    them — made storable on bind (`storable`). Client input is refused at the API instead (422), so
    clients learn of it; what upstream or a receiver sends cannot be refused, only kept readably."""

    impl = Text
    cache_ok = True


class StorableString(_StorableStr):
    """`StorableText` with a length (VARCHAR), e.g. an upstream task id."""

    impl = String
    cache_ok = True


class JSONDocument(TypeDecorator[Any]):
    """JSON documents: JSONB on Postgres, JSON text elsewhere. Every string in them is made storable on
    bind (`storable_json`): they carry upstream answers (prompts, error messages, usage) and jobs as
    GET shows them."""

    impl = JSON
    cache_ok = True
    #: As JSON's default: a None value is the JSON `null`, as before this type wrapped JSON.
    should_evaluate_none = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return storable_json(value)


JSONDoc = JSONDocument()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}
