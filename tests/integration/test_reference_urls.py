"""`reference_image`/`last_frame_image` as http(s) URLs, through POST /v1/jobs on the served gateway: the
gateway fetches them itself (SSRF-guarded) before the job exists; a refusal is a 422 naming the field and
nothing reaches the upstream."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from app.jobs.models import Job
from tests.conftest import Served, make_settings, serve
from tests.helpers import data_uri, image_bytes
from tests.imageserver import Body, image_server

PNG = image_bytes(640, 360)


async def refused(served: Served, field: str, **body: Any) -> dict[str, Any]:
    response = await served.client.post("/v1/jobs", json={"prompt": "a cat", **body})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert (problem["field"], problem["code"]) == (field, "validation_error")
    assert "create" not in served.sandbox.stats.requests
    assert served.sandbox.stats.upstream_calls == 0
    assert (await served.client.get("/v1/jobs")).json()["data"] == []
    return problem


async def test_the_metadata_service_is_refused_before_any_upstream_call(gateway: Served) -> None:
    problem = await refused(gateway, "reference_image", reference_image="http://169.254.169.254/latest")
    assert problem["detail"].startswith("reference_image: refused: 169.254.169.254 is the instance metadata")


async def test_a_last_frame_url_is_guarded_too(gateway: Served) -> None:
    problem = await refused(
        gateway,
        "last_frame_image",
        model="wan2.2-kf2v-flash",
        reference_image=data_uri(640, 360),
        last_frame_image="http://100.100.100.200/latest/meta-data/",
    )
    assert "Alibaba Cloud instance metadata service" in problem["detail"]


async def test_a_loopback_url_is_refused_by_default_naming_the_setting(gateway: Served) -> None:
    async with image_server({"/cat.png": Body(PNG)}) as images:
        problem = await refused(gateway, "reference_image", reference_image=images.url("/cat.png"))
    assert "127.0.0.1 is a loopback address" in problem["detail"]
    assert "ALLOW_PRIVATE_URLS" in problem["detail"]
    assert images.requests == []  # refused before it was fetched


async def test_a_fetched_image_is_what_upstream_renders(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, allow_private_urls=True)
    async with image_server({"/cat.png": Body(PNG)}) as images, serve(settings) as served:
        url = images.url("/cat.png")
        job_id = await served.submit(url)
        # Whatever the URL serves from now on does not matter: its bytes were taken at submit.
        images.routes["/cat.png"] = Body(b"gone", status=404)

        done = await served.drive(job_id, "succeeded", "failed")
        assert done["status"] == "succeeded", done.get("error")
        assert done["request"]["reference_image"] == {
            "kind": "url",
            "url": url,
            "fetched": True,
            "mime": "image/png",
            "bytes": len(PNG),
            "sha256": hashlib.sha256(PNG).hexdigest(),
            "width": 640,
            "height": 360,
        }
        async with served.gateway.sessions() as session:
            job = await session.get(Job, job_id)
        assert job is not None and job.upstream_body is not None
        assert (
            job.upstream_body["input"]["img_url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
        )
        assert served.sandbox.stats.requests["create"] == 1
        assert images.paths == ["/cat.png"]
