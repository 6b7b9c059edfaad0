"""Temporary uploads (docs/PROTOCOL.md §6): what backs the SDK's `file://` inputs.

1. `GET /api/v1/uploads?action=getPolicy&model=…` (with the client's key) → `issue`: a policy whose
   `upload_host` is this gateway (`/api/v1/uploads/oss`), valid 300 s, for one `upload_dir` of the caller.
2. The SDK POSTs the OSS-style form there, without a key (the policy and its signature are the
   credential, as at OSS) → `accept`: the file is stored under `key` (= `upload_dir/<file name>`).
3. The create names `oss://<key>` (with `X-DashScope-OssResourceResolve: enable`) → `resolve`: the bytes,
   for the caller only, for 48 h; the facade hands them to the core as a `data:` URI, so they go through
   the same image checks as any reference image.

Stored in the database, table `dashscope_uploads` (one row per issued policy, filled by its first file;
further files under the same policy get rows of their own): every replica sees every upload, and nothing
is added to the video store. Files are images (at most IMAGE_MAX_BYTES), kept 48 h; expired rows are
deleted when a policy is issued. The signature is random and only its sha256 is kept. [Upstream binds an
upload to the model named in step 1; this gateway does not.]
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import Index, Integer, LargeBinary, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column
from starlette.responses import Response

from app.db.base import Base, rowcount, utcnow

#: How long an issued policy accepts uploads (DashScope's `expire_in_seconds`).
POLICY_TTL = timedelta(seconds=300)
#: How long an uploaded file can be named as `oss://` (DashScope: 48 h).
FILE_TTL = timedelta(hours=48)
UPLOAD_PATH = "/api/v1/uploads/oss"
OSS_ACCESS_KEY_ID = "wan-gateway"
KEY_MAX_CHARS = 1024


def new_upload_id() -> str:
    return "upl_" + secrets.token_hex(12)


class DashScopeUpload(Base):
    """One uploaded file (or, while `key` is null, a policy not used yet)."""

    __tablename__ = "dashscope_uploads"
    __table_args__ = (
        Index("ix_dashscope_uploads_upload_dir", "upload_dir"),
        Index("ix_dashscope_uploads_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_upload_id)
    #: The tenant that asked for the policy (null when authentication is off); only it can resolve.
    owner: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    upload_dir: Mapped[str] = mapped_column(String(255))
    #: sha256 of the policy's signature: the upload's credential.
    token_sha256: Mapped[str] = mapped_column(String(64))
    policy_expires_at: Mapped[datetime]
    key: Mapped[str | None] = mapped_column(String(KEY_MAX_CHARS), unique=True)
    content_type: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    uploaded_at: Mapped[datetime | None]
    #: The policy's expiry until a file arrives, then the file's (48 h).
    expires_at: Mapped[datetime]


class UploadRefused(Exception):
    """An upload OSS would refuse: answered as OSS answers, in XML."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
            f"  <Code>{escape(self.code)}</Code>\n  <Message>{escape(self.message)}</Message>\n</Error>\n"
        )
        return Response(body, status_code=self.status, media_type="application/xml")


@dataclass(frozen=True)
class Resolved:
    content_type: str
    data: bytes

    def data_uri(self) -> str:
        # The type is what the uploader said; the image checks read the bytes themselves.
        mime = self.content_type if self.content_type.startswith("image/") else ""
        return f"data:{mime};base64," + base64.b64encode(self.data).decode("ascii")


def _policy_document(upload_dir: str, expires: datetime, max_bytes: int) -> str:
    document = {
        "expiration": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [["content-length-range", 0, max_bytes], ["starts-with", "$key", upload_dir]],
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


def _policy_dir(policy: str) -> str:
    try:
        document = json.loads(base64.b64decode(policy, validate=True))
        conditions = {c[0]: c[1:] for c in document["conditions"]}
        return str(conditions["starts-with"][1])
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError):
        raise UploadRefused(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None


def _digest(signature: str) -> str:
    return hashlib.sha256(signature.encode("utf-8", "replace")).hexdigest()


class UploadStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, upload_host: str, max_bytes: int
    ) -> None:
        self._sessions = sessions
        self.upload_host = upload_host
        self.max_bytes = max_bytes

    async def issue(self, owner: str | None, model: str) -> dict[str, Any]:
        """A new policy for `owner` (the `data` of the getPolicy answer); expired uploads are dropped."""
        now = utcnow()
        scope = hashlib.sha256((owner or "").encode()).hexdigest()[:12]
        upload_dir = f"dashscope-instant/{scope}/{now:%Y-%m-%d}/{secrets.token_hex(16)}"
        expires = now + POLICY_TTL
        signature = secrets.token_urlsafe(24)
        async with self._sessions.begin() as session:
            await session.execute(delete(DashScopeUpload).where(DashScopeUpload.expires_at < now))
            session.add(
                DashScopeUpload(
                    owner=owner,
                    model=model,
                    upload_dir=upload_dir,
                    token_sha256=_digest(signature),
                    policy_expires_at=expires,
                    expires_at=expires,
                    created_at=now,
                )
            )
        return {
            "policy": _policy_document(upload_dir, expires, self.max_bytes),
            "signature": signature,
            "upload_dir": upload_dir,
            "upload_host": self.upload_host,
            "expire_in_seconds": int(POLICY_TTL.total_seconds()),
            "max_file_size_mb": max(1, math.floor(self.max_bytes / (1024 * 1024))),
            "capacity_limit_mb": 999_999_999,
            "oss_access_key_id": OSS_ACCESS_KEY_ID,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }

    async def accept(
        self, *, policy: str, signature: str, key: str, content_type: str | None, data: bytes
    ) -> None:
        """Store one file of the form, or raise `UploadRefused` as OSS would."""
        upload_dir = _policy_dir(policy)
        now = utcnow()
        async with self._sessions() as session:
            grant = await session.scalar(
                select(DashScopeUpload)
                .where(DashScopeUpload.upload_dir == upload_dir)
                .order_by(DashScopeUpload.created_at)
                .limit(1)
            )
        if grant is None or not hmac.compare_digest(grant.token_sha256, _digest(signature)):
            raise UploadRefused(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if grant.policy_expires_at < now:
            raise UploadRefused(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        if not key.startswith(upload_dir + "/") or len(key) > KEY_MAX_CHARS or key == upload_dir + "/":
            condition = f'["starts-with", "$key", "{upload_dir}"]'
            raise UploadRefused(
                403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {condition}"
            )
        if len(data) > self.max_bytes:
            too_large = "Your proposed upload exceeds the maximum allowed size."
            raise UploadRefused(400, "EntityTooLarge", too_large)
        values: dict[str, Any] = {
            "key": key,
            "content_type": (content_type or "application/octet-stream")[:255],
            "data": data,
            "size": len(data),
            "uploaded_at": now,
            "expires_at": now + FILE_TTL,
        }
        try:
            async with self._sessions.begin() as session:
                filled = await session.execute(
                    update(DashScopeUpload)
                    .where(DashScopeUpload.id == grant.id, DashScopeUpload.key.is_(None))
                    .values(**values)
                )
                if not rowcount(filled):  # the policy already brought a file: one row more
                    session.add(
                        DashScopeUpload(
                            owner=grant.owner,
                            model=grant.model,
                            upload_dir=upload_dir,
                            token_sha256=grant.token_sha256,
                            policy_expires_at=grant.policy_expires_at,
                            created_at=now,
                            **values,
                        )
                    )
        except IntegrityError:
            raise UploadRefused(
                409,
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten.",
            ) from None

    async def resolve(self, owner: str | None, key: str) -> Resolved | None:
        """The file `oss://<key>` names, if `owner` uploaded it and it has not expired."""
        mine = DashScopeUpload.owner.is_(None) if owner is None else DashScopeUpload.owner == owner
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(DashScopeUpload.content_type, DashScopeUpload.data).where(
                        DashScopeUpload.key == key,
                        mine,
                        DashScopeUpload.data.is_not(None),
                        DashScopeUpload.expires_at > utcnow(),
                    )
                )
            ).first()
        if row is None or row.data is None:
            return None
        return Resolved(content_type=row.content_type or "", data=row.data)
