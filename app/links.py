"""Signed, key-less download links: `GET /v1/links/{job_id}/{variant}?expires=…&signature=…`.

A DashScope client downloads `output.video_url` with a plain GET (DashScope's own URLs are signed OSS URLs),
and a `<video src>` cannot send an `Authorization` header; so the facade (and `result.signed_url`) hands out
a link whose signature is the authority: HMAC-SHA256 over job id, variant and expiry, base64url.

The expiry is now + LINK_TTL_S rounded *up* to the hour: every fetch of a task within the same hour gets the
same URL (a client or a CDN may cache it), and no link lives less than the TTL.

The key is LINK_SIGNING_SECRET or, when unset, one generated once and kept in the database
(`link_signing_secrets`, the first writer wins) so every replica and every restart signs alike. It is
loaded once when the process starts (`load_secret`); the lifespan hands it to the log redactor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import SecretStr
from sqlalchemy import Integer, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow

#: What a link may point at: the stored video, or its poster frame.
LinkVariant = Literal["video", "thumbnail"]
VARIANTS: tuple[LinkVariant, ...] = ("video", "thumbnail")
#: Why a link is refused (the problem's `code`).
LinkProblem = Literal["link_invalid", "link_expired"]

_HOUR = 3600


class LinkSecret(Base):
    """The link signing key generated on first start when LINK_SIGNING_SECRET is not set."""

    __tablename__ = "link_signing_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


async def load_secret(sessions: async_sessionmaker[AsyncSession], configured: SecretStr | None) -> str:
    """LINK_SIGNING_SECRET, or the one kept in the database (generated now if there is none yet; when two
    processes race, the first insert wins and both use it)."""
    if configured is not None:
        return configured.get_secret_value()
    async with sessions() as session:
        found = await session.scalar(select(LinkSecret.secret).where(LinkSecret.id == 1))
    if found:
        return found
    try:
        async with sessions.begin() as session:
            session.add(LinkSecret(id=1, secret=secrets.token_urlsafe(32)))
    except IntegrityError:  # another process generated it first: use theirs
        pass
    async with sessions() as session:
        stored = await session.scalar(select(LinkSecret.secret).where(LinkSecret.id == 1))
    assert stored is not None
    return stored


class LinkSigner:
    """Makes and checks signed links; `clock` (unix seconds) is injectable for tests."""

    def __init__(
        self,
        secret: str,
        *,
        public_base_url: str,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = secret.encode()
        self._base = public_base_url.rstrip("/")
        self._ttl_s = ttl_s
        self._clock = clock

    def expires(self) -> int:
        """The expiry of a link made now: now + TTL, rounded up to the hour (unix seconds)."""
        return math.ceil((self._clock() + self._ttl_s) / _HOUR) * _HOUR

    def signed(self, job_id: str, variant: LinkVariant = "video") -> tuple[str, datetime]:
        """The link and when it expires."""
        expires = self.expires()
        url = (
            f"{self._base}/v1/links/{job_id}/{variant}"
            f"?expires={expires}&signature={self._signature(job_id, variant, expires)}"
        )
        return url, datetime.fromtimestamp(expires, UTC)

    def url(self, job_id: str, variant: LinkVariant = "video") -> str:
        return self.signed(job_id, variant)[0]

    def problem(self, job_id: str, variant: str, expires: int, signature: str) -> LinkProblem | None:
        """None when the link is good; `link_invalid` when the signature is not ours for these values,
        `link_expired` when it is but the expiry has passed."""
        expected = self._signature(job_id, variant, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return "link_invalid"
        if expires <= self._clock():
            return "link_expired"
        return None

    def verify(self, job_id: str, variant: str, expires: int, signature: str) -> bool:
        return self.problem(job_id, variant, expires, signature) is None

    def _signature(self, job_id: str, variant: str, expires: int) -> str:
        message = f"{job_id}\n{variant}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
