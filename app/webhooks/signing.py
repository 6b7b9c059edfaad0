"""Standard Webhooks signing (https://www.standardwebhooks.com), with the `standardwebhooks` package.

`webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`; during a secret rotation the
message is signed with every configured secret and the signatures are space-separated, so receivers
holding either secret verify it.
"""

from __future__ import annotations

import base64
import secrets as _secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def generate_secret() -> str:
    return "whsec_" + base64.b64encode(_secrets.token_bytes(32)).decode()


def sign(secrets: Sequence[str], msg_id: str, timestamp: datetime, body: str) -> str:
    if not secrets:
        raise ValueError("no webhook secret to sign with")
    return " ".join(Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body) for secret in secrets)


def headers(secrets: Sequence[str], msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
    }
