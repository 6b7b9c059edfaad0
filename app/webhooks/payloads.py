"""What a webhook says: `{"type": "job.<status>", "timestamp": ..., "data": <job as GET returned it>}`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def body(event_type: str, timestamp: datetime, data: dict[str, Any]) -> str:
    """The exact text that is signed and sent (compact, stable across retries)."""
    payload = {"type": event_type, "timestamp": timestamp.isoformat().replace("+00:00", "Z"), "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
