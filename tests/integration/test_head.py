"""HEAD is answered wherever GET is: the GET's status and headers (a video's Content-Length and ETag), and
not one byte of body on the wire; `Allow` on a 405 names exactly the methods served."""

from __future__ import annotations

import httpx

from tests.conftest import Served
from tests.helpers import raw_head

#: Headers that may differ between two answers to the same request (a stream's GET is chunked; its HEAD
#: has no body to frame).
PER_ANSWER = {"x-request-id", "date", "connection", "transfer-encoding"}
#: GETs whose body changes between two requests (ages, timestamps): their length may differ too.
LIVE_BODIES = {"/metrics", "/v1/admin/stats"}


def comparable(headers: httpx.Headers, path: str) -> dict[str, str]:
    ignored = PER_ANSWER | ({"content-length"} if path in LIVE_BODIES else set())
    return {k: v for k, v in headers.items() if k not in ignored}


async def test_head_answers_as_get_without_a_body(gateway: Served, png_uri: str) -> None:
    job = await gateway.submit(png_uri)
    done = await gateway.drive(job, "succeeded")
    content = f"/v1/jobs/{job}/content"
    requests: list[tuple[str, dict[str, str]]] = [
        (path, {})
        for path in (
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/admin/stats",
            "/v1/jobs",
            "/v1/jobs?status=succeeded&limit=1",
            f"/v1/jobs/{job}",
            f"/v1/jobs/{job}/events",
            f"/v1/jobs/{job}/deliveries",
            content,
            "/v1/jobs/job_missing",
            "/openapi.json",
            "/docs",
            "/redoc",
            "/docs-assets/swagger-ui.css",
        )
    ]
    requests += [
        (content, {"Range": "bytes=100-199"}),
        (content, {"Range": "bytes=999999999-"}),
        (content, {"Range": "!"}),
        (content, {"If-None-Match": f'"{done["result"]["sha256"]}"'}),
    ]
    for path, headers in requests:
        get = await gateway.client.get(path, headers=headers)
        status, head_headers, body = await raw_head(gateway.url, path, headers)
        assert (status, body) == (get.status_code, b""), path
        assert comparable(head_headers, path) == comparable(get.headers, path), path
        if "content-length" in get.headers and path not in LIVE_BODIES:
            assert head_headers["content-length"] == str(len(get.content)), path

    _, video, _ = await raw_head(gateway.url, content)
    assert video["content-length"] == str(done["result"]["bytes"])
    assert video["etag"] == f'"{done["result"]["sha256"]}"' and video["accept-ranges"] == "bytes"
    head = await gateway.client.head(f"/v1/jobs/{job}/events")
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")


async def test_405_allows_exactly_what_is_served(gateway: Served) -> None:
    for method, path, allowed in (
        ("POST", "/healthz", "GET, HEAD"),
        ("POST", "/docs", "GET, HEAD"),
        ("DELETE", "/redoc", "GET, HEAD"),
        ("HEAD", "/v1/jobs/job_x/cancel", "POST"),
        ("PUT", "/v1/jobs", "GET, HEAD, POST"),
    ):
        response = await gateway.client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allowed, (method, path)
