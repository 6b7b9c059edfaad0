"""Every bad input gets a 4xx application/problem+json naming the field, and causes no upstream call."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Served
from tests.helpers import data_uri

PNG = data_uri(640, 360)
OK: dict[str, Any] = {"prompt": "a cat", "reference_image": PNG}

CASES: list[tuple[dict[str, Any], str]] = [
    ({"duration": 20}, "duration"),
    ({"duration": 2.5}, "duration"),
    ({"duration": "long"}, "duration"),
    ({"duration": -1}, "duration"),
    ({"fps": 24}, "fps"),
    ({"size": "big"}, "size"),
    ({"size": "640*360"}, "size"),
    ({"size": "832*480"}, "size"),
    ({"resolution": "4K"}, "resolution"),
    ({"resolution": "480P"}, "resolution"),
    ({"seed": -5}, "seed"),
    ({"seed": 2**31}, "seed"),
    ({"prompt": "x" * 1501}, "prompt"),
    ({"model": "wan2.2-i2v-flash", "prompt": "x" * 801}, "prompt"),
    ({"negative_prompt": "x" * 501}, "negative_prompt"),
    ({"model": "sora"}, "model"),
    ({"model": "wan2.2-kf2v-flash"}, "last_frame_image"),
    ({"last_frame_image": PNG}, "last_frame_image"),
    ({"audio": False, "model": "wan2.6-i2v"}, "audio"),
    ({"audio_url": "https://example.com/a.mp3", "model": "wan2.2-i2v-plus"}, "audio_url"),
    ({"shot_type": "wide"}, "shot_type"),
    ({"template": "flying"}, "template"),
    ({"template": "Not A Slug!"}, "template"),
    ({"motion_strength": "strong"}, "motion_strength"),
    ({"reference_image": "file:///etc/passwd"}, "reference_image"),
    ({"reference_image": "data:image/png;base64,!!!"}, "reference_image"),
    ({"reference_image": data_uri(200, 200)}, "reference_image"),
    ({"reference_image": data_uri(640, 360, "GIF")}, "reference_image"),
    ({"reference_image": ""}, "reference_image"),
    ({"colour": "blue"}, "colour"),
    ({"metadata": "not an object"}, "metadata"),
    ({"metadata": {"blob": "x" * 20000}}, "metadata"),
]


@pytest.mark.one_database(reason="refused before the database")
@pytest.mark.parametrize(("change", "field"), CASES, ids=[f"{f}-{i}" for i, (_, f) in enumerate(CASES)])
async def test_bad_field_is_named(gateway: Served, change: dict[str, Any], field: str) -> None:
    response = await gateway.client.post("/v1/jobs", json={**OK, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == field
    assert problem["code"] == "validation_error"
    assert problem["status"] == 422 and problem["title"] and problem["detail"]
    assert problem["type"].startswith("urn:wan-gateway:problem:")
    assert gateway.gateway.sandbox is not None
    assert gateway.gateway.sandbox.stats.upstream_calls == 0
    assert (await gateway.client.get("/v1/jobs")).json()["data"] == []


#: Values of another JSON type than the field's: none is coerced (one gateway for all: they cost nothing).
WRONG_TYPES: list[tuple[dict[str, Any], str]] = [
    ({"seed": True}, "seed"),
    ({"seed": 42.0}, "seed"),
    ({"seed": "42"}, "seed"),
    ({"duration": "5"}, "duration"),
    ({"fps": "30"}, "fps"),
    ({"audio": "on", "model": "wan2.6-i2v-flash"}, "audio"),
    ({"prompt_extend": 1}, "prompt_extend"),
    ({"watermark": "false"}, "watermark"),
    ({"cache": 0}, "cache"),
    ({"prompt": 5}, "prompt"),
    ({"model": ["wan2.6-i2v"]}, "model"),
    ({"reference_image": {"url": "https://example.com/a.png"}}, "reference_image"),
    ({"webhook_events": "job.succeeded"}, "webhook_events"),
]


async def test_types_are_strict(gateway: Served) -> None:
    for change, field in WRONG_TYPES:
        response = await gateway.client.post("/v1/jobs", json={**OK, **change})
        assert response.status_code == 422, (change, response.text)
        assert response.json()["field"] == field and response.json()["code"] == "validation_error", change
    assert gateway.sandbox.stats.upstream_calls == 0
    assert (await gateway.client.get("/v1/jobs")).json()["data"] == []
    # A JSON integer is a number: `duration: 5` (and the 5.0 of a float) are fine.
    for duration in (5, 5.0):
        response = await gateway.client.post("/v1/jobs", json={**OK, "duration": duration})
        assert response.status_code == 202, response.text


@pytest.mark.one_database(reason="refused before the database")
async def test_missing_reference_image_and_missing_body(gateway: Served) -> None:
    response = await gateway.client.post("/v1/jobs", json={"prompt": "a cat"})
    assert response.status_code == 422 and response.json()["field"] == "reference_image"
    response = await gateway.client.post("/v1/jobs")
    assert response.status_code == 422 and response.json()["field"] == "body"


@pytest.mark.one_database(reason="refused before the database")
async def test_malformed_json_is_400(gateway: Served) -> None:
    response = await gateway.client.post(
        "/v1/jobs", content=b'{"prompt": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json" and response.json()["field"] == "body"


@pytest.mark.one_database(reason="refused before the database")
async def test_duration_20_for_the_default_model_is_refused_with_the_accepted_range(gateway: Served) -> None:
    response = await gateway.client.post("/v1/jobs", json={**OK, "duration": 20})
    problem = response.json()
    assert problem["field"] == "duration"
    assert "wan2.6-i2v-flash" in problem["detail"] and "2 to 15" in problem["detail"]


async def test_every_model_accepts_a_valid_request(gateway: Served) -> None:
    from app.providers.dashscope.capabilities import MODELS

    for name, spec in MODELS.items():
        body: dict[str, Any] = {**OK, "model": name}
        if spec.is_kf2v:
            body["last_frame_image"] = PNG
        response = await gateway.client.post("/v1/jobs", json=body)
        assert response.status_code == 202, (name, response.text)
