"""GET /v1/jobs: newest first, status filter, cursor pagination; GET of an unknown job is a 404."""

from __future__ import annotations

import base64

from tests.conftest import Served


async def test_pagination_walks_every_job_once_newest_first(gateway: Served, png_uri: str) -> None:
    ids = []
    for i in range(7):
        response = await gateway.client.post("/v1/jobs", json={"prompt": f"p{i}", "reference_image": png_uri})
        ids.append(response.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await gateway.client.get("/v1/jobs", params=params)).json()
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_status_filter(gateway: Served, png_uri: str) -> None:
    kept = (await gateway.client.post("/v1/jobs", json={"prompt": "a", "reference_image": png_uri})).json()
    gone = (await gateway.client.post("/v1/jobs", json={"prompt": "b", "reference_image": png_uri})).json()
    assert (await gateway.client.post(f"/v1/jobs/{gone['id']}/cancel")).status_code == 200
    queued = (await gateway.client.get("/v1/jobs", params={"status": "queued"})).json()
    assert [j["id"] for j in queued["data"]] == [kept["id"]]
    both = (await gateway.client.get("/v1/jobs", params={"status": "queued,canceled"})).json()
    assert {j["id"] for j in both["data"]} == {kept["id"], gone["id"]}


async def test_bad_list_parameters_name_the_field(gateway: Served) -> None:
    for params, field in (
        ({"status": "done"}, "status"),
        ({"limit": 0}, "limit"),
        ({"cursor": "nope"}, "cursor"),
    ):
        response = await gateway.client.get("/v1/jobs", params=params)
        assert response.status_code == 422
        assert response.json()["field"] == field


async def test_unknown_job_is_404_problem(gateway: Served) -> None:
    for method, path in (
        ("GET", "/v1/jobs/job_nope"),
        ("POST", "/v1/jobs/job_nope/cancel"),
        ("GET", "/v1/jobs/job_nope/content"),
    ):
        response = await gateway.client.request(method, path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"


async def test_a_forged_cursor_is_a_422_naming_it(gateway: Served) -> None:
    """A date whose offset overflows on conversion to UTC used to be a 500."""
    forged = base64.urlsafe_b64encode(b"0001-01-01T00:00:00+14:00|job_abc").decode().rstrip("=")
    response = await gateway.client.get("/v1/jobs", params={"cursor": forged})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "cursor"
