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


def cache_key(request: VideoRequest, submission: Submission) -> str | None:
    """sha256 of what determines the video, or None when the request cannot be reused."""
    if request.seed is None:
        return None
    images = [request.reference_image]
    if request.last_frame_image is not None:
        images.append(request.last_frame_image)
    if any(image.sha256 is None for image in images):
        return None
    return sha256_json(
        {
            "v": CACHE_KEY_VERSION,
            "model": submission.model,
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "duration": submission.duration,
            "fps": submission.fps,
            "resolution": submission.resolution,  # from `resolution`, else the tier `size` picks
            "seed": request.seed,
            "reference_image": request.reference_image.sha256,
            "last_frame_image": request.last_frame_image.sha256 if request.last_frame_image else None,
            "motion_strength": request.motion_strength,
            "audio_url": request.audio_url,
            "audio": request.audio,
            "shot_type": request.shot_type,
            "prompt_extend": request.prompt_extend,
            "watermark": request.watermark,
            "template": request.template,
        }
    )
