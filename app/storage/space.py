"""StorageSpace: is there room on disk to copy videos? For readiness, which a 2-byte probe write cannot tell.

Every copy is staged on local disk (`Storage.staging_dir()`: the local store's own filesystem, or the S3
store's staging directory), so a full disk stops every copy while a tiny write still succeeds. Two signs
make storage not ready:

- the staging filesystem has less than `min_free_bytes` free (`STORAGE_MIN_FREE_BYTES`);
- the last copy of this process ran out of space (`record_full`, from a `CopyError` with `needed_bytes`)
  and there is still not room for that video plus the minimum. It clears itself when a copy succeeds
  (`record_success`) or when enough space is back — the retrying job then succeeds on its next attempt.

The texts returned are for `/readyz` and logs: sizes and the OS's reason, never a path.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_MIB = 1 << 20


def _size(count: int) -> str:
    return f"{count / _MIB:.1f} MiB"


@dataclass(frozen=True)
class SpaceFailure:
    """A copy that did not fit: when, why (client-safe words), and how many bytes it needed."""

    at: datetime
    reason: str
    needed_bytes: int


class StorageSpace:
    """Free space on the staging filesystem, and the last copy that ran out of it (thread-safe)."""

    def __init__(self, staging_dir: Callable[[], Path], min_free_bytes: int) -> None:
        self._staging_dir = staging_dir
        self.min_free_bytes = min_free_bytes
        self._failure: SpaceFailure | None = None
        self._lock = threading.Lock()

    @property
    def failure(self) -> SpaceFailure | None:
        return self._failure

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use on the staging filesystem (blocking: statvfs)."""
        return shutil.disk_usage(self._staging_dir()).free

    def record_full(self, reason: str, needed_bytes: int) -> None:
        with self._lock:
            self._failure = SpaceFailure(datetime.now(UTC), reason, needed_bytes)

    def record_success(self) -> None:
        with self._lock:
            self._failure = None

    def problem(self) -> str | None:
        """Why videos cannot be copied now, or None (blocking: call it in a worker thread)."""
        free = self.free_bytes()
        if free < self.min_free_bytes:
            minimum = _size(self.min_free_bytes)
            return f"low disk space: {_size(free)} free for videos, below the {minimum} minimum"
        with self._lock:
            failure = self._failure
            if failure is None:
                return None
            if free >= failure.needed_bytes + self.min_free_bytes:
                self._failure = None  # room is back: the next attempt will fit
                return None
        return (
            f"out of disk space: the last video copy failed ({failure.reason}); it needs "
            f"{_size(failure.needed_bytes)}, {_size(free)} are free"
        )
