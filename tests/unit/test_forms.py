"""Form fields → the JSON body they stand for, typed from the body model (app/api/forms.py)."""

from __future__ import annotations

import io

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import FormData, UploadFile

from app.api.forms import field_kind, file_fields, form_body, multipart_body
from app.api.routing import parse_json
from app.jobs.schemas import JobCreate
from tests.helpers import image_bytes

FILES = ("reference_image", "last_frame_image")


def test_the_documented_form_names_its_file_fields_and_plain_types() -> None:
    extra = multipart_body(JobCreate, files=FILES)
    assert file_fields(extra) == frozenset(FILES)
    assert file_fields({}) is None
    form = extra["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["required"] == ["reference_image"]
    assert form["schema"]["properties"]["duration"]["type"] == "number"  # no `anyOf … null` in a form
    assert form["encoding"] == {"metadata": {"contentType": "application/json"}}
    kinds = {name: field_kind(f.annotation) for name, f in JobCreate.model_fields.items()}
    assert (kinds["seed"], kinds["cache"], kinds["metadata"], kinds["webhook_events"]) == (
        "number",
        "bool",
        "object",
        "list",
    )
    assert kinds["prompt"] == kinds["resolution"] == "text"


async def test_values_are_typed_and_files_become_data_uris() -> None:
    png = image_bytes(360, 360)
    form = FormData(
        [
            ("prompt", "hi"),
            ("duration", "2.5"),
            ("seed", "7"),
            ("audio", "FALSE"),
            ("fps", ""),  # left blank: absent
            ("webhook_events", '["job.failed"]'),
            ("reference_image", UploadFile(io.BytesIO(png), filename="x.bin")),
            ("last_frame_image", UploadFile(io.BytesIO(b""), filename="")),  # no file chosen
        ]
    )
    body = await form_body(form, JobCreate, frozenset(FILES), parse_json)
    assert body.pop("reference_image").startswith("data:image/png;base64,iVBOR")
    typed = {"prompt": "hi", "duration": 2.5, "seed": 7, "audio": False, "webhook_events": ["job.failed"]}
    assert body == typed
    twice = FormData([("prompt", "a"), ("prompt", "b")])
    with pytest.raises(RequestValidationError, match="more than once"):
        await form_body(twice, JobCreate, frozenset(FILES), parse_json)
