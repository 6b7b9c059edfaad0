"""What makes two requests "the same": pure functions, unit-tested on their own.

- `request_fingerprint`: the whole request as the client meant it (for `Idempotency-Key`). Key order,
  whitespace and explicit nulls do not matter; every field that changes the job does (webhooks and
  metadata included).
- `cache_key`: only what determines the video (for result reuse). Normalized values are used (the
  resolution tier `size` picks, the model's default duration), and images count by the sha256 of their
  bytes, so a data: URI and the same bytes sent again match. Without a seed, or with an image whose bytes
  are unknown (a URL), there is no key: such a request is never reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from typing import Any

from app.jobs.schemas import JobCreate
from app.providers.base import Submission, VideoRequest

#: Bump when the cache key's contents change: old keys then simply stop matching.
CACHE_KEY_VERSION = 1


def canonical_json(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_json(document: Any) -> str:
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def request_fingerprint(body: JobCreate) -> str:
    """sha256 of the validated body (defaults filled in, top-level nulls dropped), keys sorted."""
    document = {name: value for name, value in body.model_dump(mode="json").items() if value is not None}
    return sha256_json(document)


def settled(request: VideoRequest, submission: Submission) -> dict[str, Any]:
    """Every generation field of `request` (`VideoRequest`'s, in its order), with the values the provider
    settled on where it normalizes them: the model, the duration, the fps, the resolution tier."""
    chosen = {
        "model": submission.model,
        "duration": submission.duration,
        "fps": submission.fps,
        "resolution": submission.resolution,
    }
    return {f.name: chosen.get(f.name, getattr(request, f.name)) for f in fields(request)}


def cache_key(request: VideoRequest, submission: Submission) -> str | None:
    """sha256 of what determines the video, or None when the request cannot be reused."""
    if request.seed is None:
        return None
    images = [request.reference_image]
    if request.last_frame_image is not None:
        images.append(request.last_frame_image)
    if any(image.sha256 is None for image in images):
        return None
    document = settled(request, submission)
    del document["size"]  # what it decides is the resolution tier, which is there
    document["negative_prompt"] = request.negative_prompt or None  # empty is none
    document["reference_image"] = request.reference_image.sha256
    document["last_frame_image"] = request.last_frame_image.sha256 if request.last_frame_image else None
    return sha256_json({"v": CACHE_KEY_VERSION, **document})
