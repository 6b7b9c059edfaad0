"""Hostile input: oversized bodies (413 before reading), deep or malformed JSON, over-long strings, unknown
fields and parameters. Every answer is a 4xx problem+json naming what is wrong; nothing reaches upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.jobs.schemas import IMAGE_FIELD_MAX_CHARS
from tests.conftest import Served, make_settings, serve
from tests.helpers import data_uri

PNG = data_uri(640, 360)
OK: dict[str, Any] = {"prompt": "a cat", "reference_image": PNG}
CAP = 64 * 1024


@pytest.fixture
async def capped(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    """The gateway with MAX_REQUEST_BYTES = 64 KiB."""
    async with serve(make_settings(tmp_path, database_url, max_request_bytes=CAP)) as served:
        yield served


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["code"] == code, problem
    return problem


async def assert_no_job(served: Served) -> None:
    assert served.sandbox.stats.upstream_calls == 0
    assert (await served.client.get("/v1/jobs")).json()["data"] == []


# --- body size ----------------------------------------------------------------------------------------


@pytest.mark.one_database(reason="refused before the database")
async def test_a_content_length_over_the_cap_is_refused_before_the_body_is_sent(capped: Served) -> None:
    """Only the request head goes out: an answer proves the server neither read nor waited for the body."""
    url = urlsplit(capped.url)
    assert url.hostname is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(
            b"POST /v1/jobs HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (CAP + 1)
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 413"), lines[0]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        assert headers["content-type"] == "application/problem+json"
        body = json.loads(await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10))
    finally:
        writer.close()
        await writer.wait_closed()
    assert body["code"] == "request_too_large" and body["limit"] == CAP and str(CAP) in body["detail"]
    await assert_no_job(capped)


@pytest.mark.one_database(reason="refused before the database")
async def test_a_body_over_the_cap_is_refused_by_a_real_client(capped: Served) -> None:
    response = await capped.client.post(
        "/v1/jobs", content=b" " * (CAP + 1), headers={"content-type": "application/json"}
    )
    assert assert_problem(response, 413, "request_too_large")["limit"] == CAP
    # A body at the cap is read as usual.
    response = await capped.client.post("/v1/jobs", content=b" " * CAP, headers={"content-type": "text/x"})
    assert response.status_code == 422
    await assert_no_job(capped)


@pytest.mark.one_database(reason="refused before the database")
async def test_a_chunked_body_is_cut_off_at_the_cap(capped: Served) -> None:
    """No Content-Length: the body is counted while it streams in. The answer is the 413 alone — not the
    400 FastAPI makes of a body whose read failed, nor a 422 about a truncated body."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(4 * CAP // 8192):
            yield b"x" * 8192
        yield b'", "reference_image": "' + PNG.encode() + b'"}'

    response = await capped.client.post(
        "/v1/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "request_too_large")
    await assert_no_job(capped)
    # The gateway still answers on a fresh or reused connection.
    assert (await capped.client.get("/healthz")).status_code == 200


async def test_the_default_cap_takes_two_ten_megabyte_images(gateway: Served) -> None:
    """32 MiB by default: two images at the 10 MB limit, as data: URIs, are not cut off by the cap."""
    big = "data:image/png;base64," + "A" * (IMAGE_FIELD_MAX_CHARS - 30)
    body = json.dumps({**OK, "reference_image": big, "last_frame_image": big}).encode()
    response = await gateway.client.post(
        "/v1/jobs", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422, "validation_error")  # read and validated: not a 413
    assert problem["field"] == "reference_image"


# --- JSON ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
        (b'{"prompt": "a", "metadata": ' + b'{"a": ' * 900 + b"1" + b"}" * 901, "nested deeper"),
        (b'{"prompt": "a", "metadata": ' + b"[" * 33 + b"]" * 33 + b"}", "nested deeper"),
        (b'{"prompt": "a", "duration": NaN}', "NaN is not a JSON number"),
        (b'{"prompt": "a", "seed": Infinity}', "Infinity is not a JSON number"),
        (b'{"prompt": "a", "metadata": {"x": 1e400}}', "1e400 is too large for a number"),
        (b'{"prompt": "a", "metadata": {"x": [-2.5E+999]}}', "-2.5E+999 is too large for a number"),
        (b'{"seed": 1' + b"0" * 5000 + b"}", "too many digits"),
        (b'{"prompt": "\xff"}', "not UTF-8"),
        (b'{"prompt": "\\ud800"}', "unpaired surrogate"),
        (b'{"metadata": {"\\uDFFF": 1}}', "unpaired surrogate"),
        (b"[" + b"0," * 100_000 + b"0]", "more than 100000 values"),
        (b'{"prompt": ', "Expecting value"),
    ],
    ids=["100k-brackets", "deep-metadata", "33-levels", "nan", "infinity", "1e400", "-2.5e999", "long-int",
         "latin-1", "surrogate", "surrogate-key", "many-values", "truncated"],
)  # fmt: skip
@pytest.mark.one_database(reason="refused before the database")
async def test_malformed_json_is_a_400_problem_with_the_reason(
    gateway: Served, body: bytes, reason: str
) -> None:
    response = await gateway.client.post(
        "/v1/jobs", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 400, "invalid_json")
    assert problem["field"] == "body" and reason in problem["detail"], problem
    await assert_no_job(gateway)


# --- fields ---------------------------------------------------------------------------------------------

LONG_CASES: list[tuple[dict[str, Any], str]] = [
    ({"model": "w" * 65}, "model"),
    ({"size": "1" * 33}, "size"),
    ({"audio_url": "https://example.com/" + "a" * 2048}, "audio_url"),
    ({"webhook_url": "https://example.com/" + "a" * 2048}, "webhook_url"),
    ({"template": "a" * 65}, "template"),
    ({"reference_image": "https://example.com/" + "a" * 2048}, "reference_image"),
    (
        {"model": "wan2.2-kf2v-flash", "last_frame_image": "https://example.com/" + "a" * 2048},
        "last_frame_image",
    ),
    ({"reference_image": "data:image/png;base64," + "A" * IMAGE_FIELD_MAX_CHARS}, "reference_image"),
    ({"webhook_events": ["job.succeeded"] * 8}, "webhook_events"),
    ({"prompt": "a\x00b"}, "prompt"),
    ({"negative_prompt": "\x00"}, "negative_prompt"),
    ({"metadata": {"k" * 129: 1}}, "metadata"),
    ({"metadata": {"k": "v" * 4097}}, "metadata"),
    ({"metadata": {"k": ["a\x00"]}}, "metadata"),
    ({"metadata": {"k\x00": 1}}, "metadata"),
    ({"nested": {"a": [1, 2]}}, "nested"),
]


@pytest.mark.parametrize(
    ("change", "field"), LONG_CASES, ids=[f"{f}-{i}" for i, (_, f) in enumerate(LONG_CASES)]
)
async def test_over_long_or_unstorable_strings_name_the_field(
    gateway: Served, change: dict[str, Any], field: str
) -> None:
    response = await gateway.client.post("/v1/jobs", json={**OK, **change})
    assert assert_problem(response, 422, "validation_error")["field"] == field
    await assert_no_job(gateway)


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep: {"a": {"a": … {"a": 1}}}."""
    value: dict[str, Any] = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_metadata_nests_at_most_eight_levels(gateway: Served) -> None:
    response = await gateway.client.post("/v1/jobs", json={**OK, "metadata": nested(9)})
    problem = assert_problem(response, 422, "validation_error")
    assert problem["field"] == "metadata" and "deeper than 8 levels" in problem["detail"]
    lists: dict[str, Any] = {"a": [[[[[[[1]]]]]]]}  # the object and 7 lists: 8 levels
    response = await gateway.client.post("/v1/jobs", json={**OK, "metadata": {"x": lists}})
    assert assert_problem(response, 422, "validation_error")["field"] == "metadata"
    await assert_no_job(gateway)
    response = await gateway.client.post("/v1/jobs", json={**OK, "metadata": nested(8)})
    assert response.status_code == 202, response.text
    assert response.json()["metadata"] == nested(8)


async def test_a_malformed_range_is_a_400_problem(gateway: Served, png_uri: str) -> None:
    job = await gateway.submit(png_uri)
    await gateway.drive(job, "succeeded")
    url = f"/v1/jobs/{job}/content"
    for header in ("!", "null", "bytes=5-1", "items=0-9"):
        response = await gateway.client.get(url, headers={"Range": header})
        assert "Range" in assert_problem(response, 400, "invalid_range")["detail"], header
    # A Range meant for another version of the video (If-Range) is ignored, malformed or not.
    assert (await gateway.client.get(url, headers={"Range": "!", "If-Range": '"other"'})).status_code == 200
    assert (await gateway.client.get(url, headers={"Range": "bytes=0-9"})).status_code == 206


# --- unknown fields and parameters ---------------------------------------------------------------------


@pytest.mark.one_database(reason="refused before the database")
async def test_unknown_body_fields_and_query_parameters_are_named(gateway: Served) -> None:
    response = await gateway.client.post("/v1/jobs", json={**OK, "colour": "blue"})
    problem = assert_problem(response, 422, "validation_error")
    assert problem["field"] == "colour" and "unknown field" in problem["detail"]
    job = await gateway.submit(PNG)
    for path in (
        "/v1/jobs",
        f"/v1/jobs/{job}",
        f"/v1/jobs/{job}/content",
        f"/v1/jobs/{job}/events",
        f"/v1/jobs/{job}/deliveries",
        "/healthz",
        "/v1/admin/stats",
    ):
        response = await gateway.client.get(path, params={"stauts": "queued"})
        problem = assert_problem(response, 422, "validation_error")
        assert problem["field"] == "stauts" and "unknown query parameter" in problem["detail"], path
    response = await gateway.client.post(f"/v1/jobs/{job}/cancel", params={"force": "1"})
    assert assert_problem(response, 422, "validation_error")["field"] == "force"
    assert (await gateway.job(job))["status"] == "queued"
    # Declared parameters still work.
    assert (await gateway.client.get("/v1/jobs", params={"status": "queued", "limit": 1})).status_code == 200


@pytest.mark.one_database(reason="refused before the database")
async def test_a_wrong_method_names_every_method_of_the_resource(gateway: Served) -> None:
    """`GET /v1/jobs` and `POST /v1/jobs` are two routes; `Allow` must name both (Starlette named one)."""
    response = await gateway.client.request("PATCH", "/v1/jobs")
    assert assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD, POST"
    response = await gateway.client.delete("/v1/jobs/job_x/cancel")
    assert response.status_code == 405 and response.headers["allow"] == "POST"


# --- identifiers and headers --------------------------------------------------------------------------


async def test_garbage_ids_and_event_ids_are_4xx(gateway: Served) -> None:
    for method, path in (
        ("GET", "/v1/jobs/job%00x"),
        ("GET", "/v1/jobs/" + "j" * 300),
        ("POST", "/v1/jobs/job%00x/cancel"),
        ("GET", "/v1/jobs/job%00x/deliveries"),
        ("GET", "/v1/jobs/job%00x/events"),
    ):
        assert_problem(await gateway.client.request(method, path), 404, "not_found")
    job = await gateway.submit(PNG)
    response = await gateway.client.post(f"/v1/jobs/{job}/deliveries/msg%00x/redeliver")
    assert_problem(response, 404, "not_found")
    for last_event_id in (b"\xb2", b"99999999999999999999", b"-1", b"1e3"):
        response = await gateway.client.get(
            f"/v1/jobs/{job}/events", headers={b"Last-Event-ID": last_event_id}
        )
        assert assert_problem(response, 422, "validation_error")["field"] == "Last-Event-ID"
    response = await gateway.client.get(f"/v1/jobs/{job}/events", params={"after": str(2**63)})
    assert assert_problem(response, 422, "validation_error")["field"] == "after"
