"""Intake's pure parts: the body copied into a `VideoRequest` field by field, and the job's echo of it."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from app.jobs.intake import PLAIN_FIELDS, echo, to_request
from app.jobs.schemas import JobCreate
from app.providers.base import ImageInput, Submission

REFERENCE = ImageInput(
    uri="data:image/png;base64,AA", sha256="a" * 64, mime="image/png", width=640, height=360
)
LAST = ImageInput(uri="https://img.example/last.png", width=640, height=360)
BODY: dict[str, Any] = {
    "model": "wan2.2-kf2v-flash",
    "prompt": "a cat",
    "negative_prompt": "blur",
    "duration": 5.0,
    "fps": 30.0,
    "size": "1280x720",
    "resolution": "720P",
    "seed": 7,
    "reference_image": "data:image/png;base64,AA",
    "last_frame_image": "https://img.example/last.png",
    "motion_strength": 0.5,
    "audio_url": "https://img.example/a.mp3",
    "audio": True,
    "shot_type": "multi",
    "prompt_extend": False,
    "watermark": True,
    "template": "flying",
}
SUBMISSION = Submission(
    model="wan2.2-kf2v-flash",
    limit_group="kf2v",
    body={},
    resolution="720P",
    duration=5,
    fps=30,
    has_audio=True,
    expected_size=(1280, 720),
)


def test_every_generation_field_is_copied_from_the_body() -> None:
    body = JobCreate.model_validate(BODY)
    request = to_request(body, REFERENCE, LAST)
    assert (request.reference_image, request.last_frame_image, request.size) == (REFERENCE, LAST, (1280, 720))
    assert {name: getattr(request, name) for name in PLAIN_FIELDS} == {
        name: BODY[name] for name in PLAIN_FIELDS
    }
    assert set(PLAIN_FIELDS) | {"reference_image", "last_frame_image", "size"} == {
        f.name for f in fields(request)
    }


def test_the_echo_is_the_request_as_the_provider_settled_it() -> None:
    body = JobCreate.model_validate({**BODY, "duration": 5.0, "resolution": None})
    request = to_request(body, REFERENCE, LAST)
    shown = echo(request, SUBMISSION, size_text=body.size)
    expected = {
        "prompt": "a cat",
        "negative_prompt": "blur",
        "duration": 5,  # the provider's whole seconds
        "fps": 30,
        "size": "1280x720",  # as the client wrote it
        "resolution": "720P",  # the tier `size` picked
        "seed": 7,
        "reference_image": REFERENCE.describe(),  # never the data: URI itself
        "last_frame_image": LAST.describe(),
        "motion_strength": 0.5,
        "audio_url": "https://img.example/a.mp3",
        "audio": True,
        "has_audio": True,
        "shot_type": "multi",
        "prompt_extend": False,
        "watermark": True,
        "template": "flying",
        "expected_size": "1280*720",
    }
    assert list(shown.items()) == list(expected.items())  # the order the job's `request` always had


def test_the_echo_leaves_out_what_was_not_given() -> None:
    body = JobCreate.model_validate({"reference_image": "data:image/png;base64,AA"})
    request = to_request(body, REFERENCE, None)
    submission = Submission(
        model=body.model,
        limit_group="wan2.6",
        body={},
        resolution="1080P",
        duration=5,
        fps=30,
        has_audio=False,
        expected_size=None,
    )
    assert echo(request, submission, size_text=None) == {
        "duration": 5,
        "fps": 30,
        "resolution": "1080P",
        "reference_image": REFERENCE.describe(),
        "has_audio": False,
    }
