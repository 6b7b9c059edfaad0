"""`POST /v1/jobs` as `multipart/form-data` (what `curl -F reference_image=@cat.png` and Swagger UI's form
send): the same fields, typed from the JSON body's model, images as uploaded files; the same errors."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import Served, make_settings, serve
from tests.helpers import image_bytes

PNG = image_bytes(640, 360)


def noisy_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 bytes a pixel."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


async def test_a_form_with_an_uploaded_png_makes_a_job_that_succeeds(gateway: Served) -> None:
    fields = {
        "prompt": "a cat",
        "duration": "2",
        "size": "1280*720",
        "seed": "11",
        "cache": "false",
        "metadata": '{"order": 7, "tags": ["x"]}',
    }
    files = {"reference_image": ("cat.png", PNG, "application/octet-stream")}
    headers = {"Idempotency-Key": "form-1"}
    response = await gateway.client.post("/v1/jobs", data=fields, files=files, headers=headers)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["metadata"] == {"order": 7, "tags": ["x"]}
    assert job["request"]["duration"] == 2 and job["request"]["seed"] == 11
    assert job["request"]["reference_image"]["sha256"]

    # The same fields and bytes, in another order: the Idempotency-Key replays the same job.
    reordered = dict(reversed(list(fields.items())))
    again = await gateway.client.post("/v1/jobs", data=reordered, files=files, headers=headers)
    assert again.status_code == 202 and again.json()["id"] == job["id"]
    assert again.headers["Idempotent-Replayed"] == "true"

    done = await gateway.drive(job["id"], "succeeded")
    assert done["result"]["width"] == 1280


async def test_the_api_references_example_body_makes_a_job(gateway: Served) -> None:
    """Swagger UI's "Try it out" sends the documented example as it is."""
    schema = (await gateway.client.get("/openapi.json")).json()
    job_create = schema["components"]["schemas"]["JobCreate"]
    response = await gateway.client.post("/v1/jobs", json=job_create["examples"][0])
    assert response.status_code == 202, response.text
    await gateway.drive(response.json()["id"], "succeeded")


@pytest.mark.one_database(reason="refused before the database")
async def test_form_errors_name_the_field(tmp_path: Path, database_url: str) -> None:
    async with serve(make_settings(tmp_path, database_url, image_max_bytes=100_000)) as gw:
        small = {"reference_image": ("cat.png", image_bytes(360, 360), "image/png")}

        async def refused(fields: dict[str, str], files: object = small) -> dict[str, object]:
            response = await gw.client.post("/v1/jobs", data=fields, files=files)  # type: ignore[arg-type]
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"
            body: dict[str, object] = response.json()
            return body

        assert (await refused({"prompt": "hi", "duration": "five"}))["field"] == "duration"
        assert (await refused({"prompt": "hi", "audio": "maybe"}))["field"] == "audio"
        assert (await refused({"prompt": "hi", "metadata": "{not json"}))["field"] == "metadata"
        events = {"prompt": "hi", "webhook_events": ["job.failed", "job.nope"]}
        assert (await refused(events))["field"] == "webhook_events[1]"  # type: ignore[arg-type]
        unknown = await refused({"prompt": "hi", "colour": "red"})
        assert unknown["field"] == "colour" and "unknown field" in str(unknown["detail"])
        assert (await refused({"prompt": "hi", "seed": "1"}, files={}))["field"] == "reference_image"
        big = {"reference_image": ("big.png", noisy_png(400), "image/png")}
        too_big = await refused({"prompt": "hi"}, files=big)
        assert too_big["field"] == "reference_image" and "larger than 100000 bytes" in str(too_big["detail"])
        wrong = {"prompt": ("p.txt", b"hi", "text/plain"), "reference_image": small["reference_image"]}
        assert (await refused({}, files=wrong))["field"] == "prompt"
        garbled = await gw.client.post(
            "/v1/jobs", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=x"}
        )
        assert garbled.status_code == 400 and garbled.json()["code"] == "invalid_form"
