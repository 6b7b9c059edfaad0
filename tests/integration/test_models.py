"""`GET /v1/models` (the registry a client builds its form from) and the `model` filter of `GET /v1/jobs`:
what the list offers for each model is exactly what `POST /v1/jobs` takes."""

from __future__ import annotations

from tests.conftest import Served


async def test_models_list_what_jobs_accept_and_the_list_filters_by_model(
    gateway: Served, png_uri: str
) -> None:
    response = await gateway.client.get("/v1/models")
    assert response.status_code == 200, response.text
    listing = response.json()
    assert listing["object"] == "list"
    models = {entry["id"]: entry for entry in listing["data"]}
    flash = models["wan2.6-i2v-flash"]
    assert flash["family"] == "wan2.6" and flash["kind"] == "i2v" and flash["object"] == "model"
    assert flash["durations"] == list(range(2, 16)) and flash["resolutions"] == ["720P", "1080P"]
    assert {"1280x720", "720x1280", "1920x1072"} <= set(flash["sizes"])  # sides floored to 16s
    assert flash["audio"] is True and flash["options"]["audio"] is True
    assert flash["options"]["shot_type"] == ["single", "multi"]
    assert models["wan2.2-kf2v-flash"]["kind"] == "kf2v"
    assert models["wan2.2-kf2v-flash"]["options"]["last_frame_image"] == "required"
    assert models["wan2.2-i2v-plus"]["audio"] is False and models["wan2.2-i2v-plus"]["durations"] == [5]

    # What the list offers is accepted: each i2v model's shortest duration at its smallest tier; what it
    # does not offer is refused, naming the field.
    for model in (m for m in models.values() if m["kind"] == "i2v"):
        body = {
            "prompt": "a cat",
            "reference_image": png_uri,
            "model": model["id"],
            "duration": min(model["durations"]),
            "resolution": model["resolutions"][0],
        }
        created = await gateway.client.post("/v1/jobs", json=body)
        assert created.status_code == 202, (model["id"], created.text)
    plus_10s = {"prompt": "a", "reference_image": png_uri, "model": "wan2.2-i2v-plus", "duration": 10}
    refused = await gateway.client.post("/v1/jobs", json=plus_10s)
    assert refused.status_code == 422 and refused.json()["field"] == "duration"

    plus = (await gateway.client.get("/v1/jobs", params={"model": "wan2.2-i2v-plus"})).json()["data"]
    assert [job["model"] for job in plus] == ["wan2.2-i2v-plus"]
    unknown = await gateway.client.get("/v1/jobs", params={"model": "sora-2\x00"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "model"
    everything = (await gateway.client.get("/v1/jobs", params={"limit": 100})).json()["data"]
    assert len(everything) == sum(1 for m in models.values() if m["kind"] == "i2v")
