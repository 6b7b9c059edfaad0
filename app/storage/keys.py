"""Object keys: the one rule for what a storage key may look like, shared by every store.

A key is a relative POSIX path such as `job_abc.mp4` or `2025/06/job_abc.mp4`. Keys become file paths
(local store) or object names (S3), so anything that could escape the root or collide with the store's own
bookkeeping is refused with ValueError.
"""

from __future__ import annotations

MAX_KEY_LENGTH = 512


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative path, else raise ValueError."""
    if not key:
        raise ValueError("storage key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key is longer than {MAX_KEY_LENGTH} characters")
    if "\\" in key:
        raise ValueError(f"storage key {key!r} contains a backslash")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in key):
        raise ValueError(f"storage key {key!r} contains a control character")
    if key.startswith("/"):
        raise ValueError(f"storage key {key!r} is absolute")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"storage key {key!r} has an empty, '.' or '..' segment")
        # Dot-names are reserved for the store itself (`.staging/`, readiness probes), so a key can never
        # land on a partial download.
        if part.startswith("."):
            raise ValueError(f"storage key {key!r} has a segment starting with '.'")
    return key
