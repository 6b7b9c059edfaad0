"""Where signing secrets come from: WEBHOOK_SECRET, or one generated once and kept in the database.

Generated secrets are shared by every process on the database (the first writer wins), so replicas sign
alike. Secrets never appear in logs or API responses; `wan-gateway webhook-secret` prints them.
"""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import split_secrets
from app.webhooks.models import WebhookSecret
from app.webhooks.signing import generate_secret


class SecretSource:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], configured: SecretStr | None) -> None:
        self._sessions = sessions
        self._secrets: list[str] = split_secrets(configured.get_secret_value()) if configured else []

    @property
    def configured(self) -> bool:
        return bool(self._secrets)

    async def get(self) -> list[str]:
        if not self._secrets:
            self._secrets = [await self._stored()]
        return list(self._secrets)

    async def _stored(self) -> str:
        async with self._sessions() as session:
            found = await session.scalar(select(WebhookSecret.secret).where(WebhookSecret.id == 1))
        if found:
            return found
        try:
            async with self._sessions.begin() as session:
                session.add(WebhookSecret(id=1, secret=generate_secret()))
        except IntegrityError:  # another process generated it first: use theirs
            pass
        async with self._sessions() as session:
            secret = await session.scalar(select(WebhookSecret.secret).where(WebhookSecret.id == 1))
        assert secret is not None
        return secret
