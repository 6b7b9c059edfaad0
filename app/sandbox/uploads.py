"""Temporary uploads (§6): the getPolicy answer, the OSS-like POST form it authorizes, and the stored files
that `oss://<key>` resolves to on create.

Files live in a directory beside the state file (one file per key, named by the key's hash so a key can
never escape the directory) and are shared by every process using that state file. [EMU] An upload is
not bound to the model named in getPolicy, though the real service binds it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.sandbox.signing import sign

OSS_ACCESS_KEY_ID = "LTAI5tSandboxEmulator"
UPLOAD_ROUTE = "/oss"


class UploadStore:
    def __init__(self, directory: Path, *, ttl_s: float) -> None:
        self.directory = directory
        self._ttl_s = ttl_s

    def _path(self, key: str) -> Path:
        return self.directory / hashlib.sha256(key.encode()).hexdigest()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` (blocking). Atomic: readers see the old file, the new one, or none."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self._path(key)
        partial = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
        try:
            partial.write_bytes(data)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)

    def read(self, key: str, *, now: float | None = None) -> bytes | None:
        """The file stored under `key`, or None when absent or older than the 48 h lifetime (blocking)."""
        path = self._path(key)
        try:
            if (now or time.time()) - path.stat().st_mtime > self._ttl_s:
                return None
            return path.read_bytes()
        except FileNotFoundError:
            return None


@dataclass(frozen=True)
class Policy:
    upload_dir: str
    expires_at: float
    max_bytes: int


def make_policy(
    secret: bytes, *, account: str, upload_host: str, now: float, ttl_s: float, max_mb: int
) -> dict[str, Any]:
    """The `data` object of `GET /uploads?action=getPolicy` (§6 step 1)."""
    day = datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%d")
    upload_dir = f"dashscope-instant/{account}/{day}/{uuid.uuid4()}"
    document = {
        "expiration": datetime.fromtimestamp(now + ttl_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [
            ["content-length-range", 0, max_mb * 1024 * 1024],
            ["starts-with", "$key", upload_dir],
        ],
    }
    policy = base64.b64encode(json.dumps(document).encode()).decode()
    return {
        "policy": policy,
        "signature": sign(secret, policy),
        "upload_dir": upload_dir,
        "upload_host": upload_host,
        "expire_in_seconds": int(ttl_s),
        "max_file_size_mb": max_mb,
        "capacity_limit_mb": 999_999_999,
        "oss_access_key_id": OSS_ACCESS_KEY_ID,
        "x_oss_object_acl": "private",
        "x_oss_forbid_overwrite": "true",
    }


def read_policy(policy: str) -> Policy:
    """Decode a policy this sandbox issued. Raises ValueError when it is not one."""
    document = json.loads(base64.b64decode(policy, validate=True))
    expires = datetime.strptime(document["expiration"], "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=UTC)
    conditions = {condition[0]: condition[1:] for condition in document["conditions"]}
    return Policy(
        upload_dir=str(conditions["starts-with"][1]),
        expires_at=expires.timestamp(),
        max_bytes=int(conditions["content-length-range"][1]),
    )
