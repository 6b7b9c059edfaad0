"""What makes two requests the same: the idempotency fingerprint and the result-reuse cache key."""

from __future__ import annotations

import json
from typing import Any

from app.config import Settings
from app.jobs.fingerprint import cache_key, request_fingerprint
from app.jobs.images import inspect_data_uri
from app.jobs.schemas import JobCreate
from app.providers.base import ImageInput, Submission, VideoRequest
from app.providers.dashscope.mapping import build_submission
from app.wiring import image_limits
from tests.helpers import data_uri

LIMITS = image_limits(Settings.model_construct())  # the IMAGE_* defaults
IMAGE = data_uri(640, 360)
BODY: dict[str, Any] = {
    "prompt": "a cat",
    "duration": 2,
    "size": "1280*720",
    "seed": 7,
    "reference_image": IMAGE,
    "metadata": {"b": 1, "a": [1, 2]},
}


def fingerprint(raw: str) -> str:
    return request_fingerprint(JobCreate.model_validate_json(raw))


def test_key_order_whitespace_and_explicit_nulls_do_not_matter() -> None:
    first = json.dumps(BODY)
    reordered = json.dumps(
        {"metadata": {"a": [1, 2], "b": 1}, **dict(reversed(list(BODY.items()))), "negative_prompt": None},
        indent=4,
    )
    assert fingerprint(first) == fingerprint(reordered)
    # Defaults count as given: omitting `model` is asking for the default model.
    assert fingerprint(first) == fingerprint(json.dumps({**BODY, "model": "wan2.6-i2v-flash", "cache": True}))


def test_every_field_that_changes_the_job_changes_the_fingerprint() -> None:
    base = fingerprint(json.dumps(BODY))
    for change in (
        {"prompt": "a dog"},
        {"seed": 8},
        {"metadata": {"b": 2}},
        {"webhook_url": "https://example.com/hook"},
        {"cache": False},
        {"reference_image": data_uri(641, 360)},
    ):
        assert fingerprint(json.dumps({**BODY, **change})) != base, change


def _key(**changes: Any) -> str | None:
    body = JobCreate.model_validate({**BODY, **changes})
    image = inspect_data_uri(body.reference_image, "reference_image", LIMITS)
    request = VideoRequest(
        model=body.model,
        reference_image=image,
        prompt=body.prompt,
        duration=body.duration,
        size=(1280, 720) if body.size == "1280*720" else (1300, 730),
        seed=body.seed,
        resolution=body.resolution,
        watermark=body.watermark,
    )
    return cache_key(request, build_submission(request))


def test_cache_key_covers_what_makes_the_video_only() -> None:
    base = _key()
    assert base is not None and len(base) == 64
    # Normalized: a size picking the same tier, or the tier given outright, is the same video.
    assert _key(size="1300*730") == base
    assert _key(resolution="720P") == base
    # Not part of the video: metadata, webhooks.
    assert _key(metadata={"other": True}, webhook_url="https://example.com/h") == base
    for change in ({"prompt": "a dog"}, {"seed": 8}, {"duration": 3}, {"watermark": True}):
        assert _key(**change) != base, change


def test_no_key_without_a_seed_or_without_the_image_bytes() -> None:
    assert _key(seed=None) is None
    request = VideoRequest(
        model="wan2.6-i2v-flash", reference_image=ImageInput(uri="https://x/a.png"), seed=1
    )
    request_ok = VideoRequest(
        model="wan2.6-i2v-flash", reference_image=ImageInput(uri="https://x/a.png", sha256="0" * 64), seed=1
    )
    submission = build_submission(
        VideoRequest(model="wan2.6-i2v-flash", reference_image=ImageInput(uri="u"), prompt="p")
    )
    assert cache_key(request, submission) is None
    assert cache_key(request_ok, submission) is not None  # a URL whose bytes were fetched and hashed


def test_cache_keys_stay_what_they_were() -> None:
    """Jobs stored with a key must still match identical requests: the digests of a request with every
    field set, and of a minimal one, are pinned (bump CACHE_KEY_VERSION to change what a key covers)."""
    image = ImageInput(uri="data:image/png;base64,AA", sha256="a" * 64)
    full = VideoRequest(
        model="wan2.2-kf2v-flash",
        reference_image=image,
        last_frame_image=ImageInput(uri="data:image/png;base64,BB", sha256="b" * 64),
        prompt="a cat",
        negative_prompt="blur",
        duration=5.0,
        fps=30.0,
        size=(1280, 720),
        seed=7,
        motion_strength=0.5,
        resolution="720P",
        audio_url="https://x/a.mp3",
        audio=True,
        shot_type="multi",
        prompt_extend=False,
        watermark=True,
        template="flying",
    )
    settled = Submission(
        model="wan2.2-kf2v-flash",
        limit_group="kf2v",
        body={},
        resolution="720P",
        duration=5,
        fps=30,
        has_audio=True,
        expected_size=(1280, 720),
    )
    assert cache_key(full, settled) == "ca304d46ac067a75acc2947bb34161d6f267a19979758cc31e58348a5fdf18b8"
    minimal = VideoRequest(model="wan2.6-i2v-flash", reference_image=image, seed=0, negative_prompt="")
    default = Submission(
        model="wan2.6-i2v-flash",
        limit_group="wan2.6",
        body={},
        resolution="1080P",
        duration=5,
        fps=30,
        has_audio=False,
        expected_size=None,
    )
    assert cache_key(minimal, default) == "295c0127633ca8ca24354076d7cbde784ba8a1c8b33f6e70d93256fabdc67298"
