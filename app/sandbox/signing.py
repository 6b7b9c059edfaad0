"""HMAC signatures for the sandbox's result URLs and upload policies (stand-ins for OSS signing)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign(secret: bytes, *parts: str) -> str:
    digest = hmac.new(secret, "\n".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify(secret: bytes, signature: str, *parts: str) -> bool:
    return hmac.compare_digest(sign(secret, *parts), signature)
