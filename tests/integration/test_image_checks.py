"""Hostile reference images through POST /v1/jobs on the served gateway, as data: URIs and as fetched URLs
(tests/imageserver.py): each is a 422 naming the field, nothing is stored or sent upstream, and the event
loop keeps answering while an image is checked (the checks run in threads of their own, jobs/images.py)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Served, make_settings, serve
from tests.helpers import wait_for
from tests.hostile_images import bomb_png, chunk_flood_png, marker_flood_jpeg, truncated_jpeg
from tests.imageserver import Body, image_server


@pytest.fixture
async def served(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    settings = make_settings(tmp_path, database_url, allow_private_urls=True, image_check_timeout_s=1.0)
    async with serve(settings) as served:
        yield served


def as_data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


async def refused(served: Served, reference_image: str) -> dict[str, Any]:
    response = await served.client.post(
        "/v1/jobs", json={"prompt": "a cat", "reference_image": reference_image}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert (problem["field"], problem["code"]) == ("reference_image", "validation_error")
    assert served.sandbox.stats.upstream_calls == 0
    assert (await served.client.get("/v1/jobs")).json()["data"] == []
    return problem


@pytest.mark.one_database(reason="refused before the database")
async def test_a_decompression_bomb_is_a_422_naming_the_field(served: Served) -> None:
    bomb = bomb_png(30_000)
    async with image_server({"/bomb.png": Body(bomb)}) as images:
        for reference in (as_data_uri(bomb, "image/png"), images.url("/bomb.png")):
            problem = await refused(served, reference)
            assert "decompression bomb" in problem["detail"]
    assert images.paths == ["/bomb.png"]


@pytest.mark.one_database(reason="refused before the database")
async def test_a_truncated_jpeg_is_refused_at_submit(served: Served) -> None:
    cut = truncated_jpeg()
    async with image_server({"/cut.jpg": Body(cut)}) as images:
        for reference in (as_data_uri(cut, "image/jpeg"), images.url("/cut.jpg")):
            problem = await refused(served, reference)
            assert (
                problem["detail"] == "reference_image: the image does not decode: it is truncated or corrupt"
            )


@pytest.mark.one_database(reason="refused before the database")
async def test_a_jpeg_padded_with_millions_of_markers_is_refused(served: Served) -> None:
    problem = await refused(served, as_data_uri(marker_flood_jpeg(), "image/jpeg"))
    assert "header is abnormal" in problem["detail"]


async def test_the_gateway_answers_while_an_image_is_checked(served: Served) -> None:
    """A PNG of 800,000 empty chunks keeps a checker busy for about a second: /healthz, asked once the
    gateway has read the image, answers first. (With the check on the event loop nothing could answer
    until it was over, and the POST's refusal would be out before /healthz was even read.)"""
    async with image_server({"/slow.png": Body(chunk_flood_png())}) as images:
        body = {"prompt": "a cat", "reference_image": images.url("/slow.png")}
        post = asyncio.ensure_future(served.client.post("/v1/jobs", json=body))

        async def image_read() -> bool:
            return images.closed == 1  # the gateway has the bytes and closed the connection: it checks

        await wait_for(image_read, within=30, what="the gateway to fetch the image")
        health = await served.client.get("/healthz")
        assert health.status_code == 200
        assert not post.done()
        response = await post
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "reference_image"
