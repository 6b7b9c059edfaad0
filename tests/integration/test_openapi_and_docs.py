"""The committed OpenAPI matches the app; /docs renders from local assets (no CDN)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import Served, make_settings, serve
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]


def test_committed_openapi_matches_the_app() -> None:
    committed = json.loads((REPO / "openapi" / "openapi.json").read_text())
    generated = create_app(Settings(_env_file=None)).openapi()
    assert committed == generated, "openapi/openapi.json is stale: run `make openapi`"


def test_errors_are_documented_as_problem_json() -> None:
    schema = create_app(Settings(_env_file=None)).openapi()
    post = schema["paths"]["/v1/jobs"]["post"]
    assert set(post["responses"]["422"]["content"]) == {"application/problem+json"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/Job")


def references(document: Any) -> list[str]:
    """Every `$ref` in the document."""
    found: list[str] = []
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("$ref"), str):
                found.append(item["$ref"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def resolves(document: Any, ref: str) -> bool:
    """Whether a local `$ref` (`#/a/b~1c`, RFC 6901) points at something in the document."""
    if not ref.startswith("#/"):
        return False  # the document is self-contained: ReDoc and Swagger UI fetch nothing else
    target = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return False
    return True


@pytest.mark.one_database(reason="no sql")
async def test_every_reference_in_the_openapi_resolves(gateway: Served) -> None:
    """ReDoc refuses to render a document with a dangling `$ref` (and Swagger UI shows a resolver error)."""
    live = (await gateway.client.get("/openapi.json")).json()
    committed = json.loads((REPO / "openapi" / "openapi.json").read_text())
    for document in (live, committed):
        refs = references(document)
        assert len(refs) > 20
        assert [ref for ref in refs if not resolves(document, ref)] == []


@pytest.mark.one_database(reason="no sql")
async def test_docs_page_loads_every_asset_from_the_gateway(gateway: Served) -> None:
    for page in ("/docs", "/redoc"):
        html = (await gateway.client.get(page)).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert urls, html
        for url in urls:
            assert not url.startswith(("http://", "https://", "//")), f"{page} loads {url} from outside"
            asset = await gateway.client.get(url)
            assert asset.status_code == 200, url
        assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html
    bundle = await gateway.client.get("/docs-assets/swagger-ui-bundle.js")
    assert len(bundle.content) > 500_000
    assert re.search(rb'"5\.\d+\.\d+"', bundle.content), "Swagger UI 5 is needed for OpenAPI 3.1"
    spec = await gateway.client.get("/openapi.json")
    assert spec.json()["openapi"].startswith("3.1")


async def test_health(gateway: Served) -> None:
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "storage": "ok",
        "job_poller": "disabled",
        "webhook_dispatcher": "disabled",
    }


async def test_readiness_follows_the_running_loops(tmp_path: Path, database_url: str) -> None:
    async with serve(make_settings(tmp_path, database_url, workers_enabled=True)) as served:

        async def loops_ready() -> bool:
            body = (await served.client.get("/readyz")).json()
            return bool(body["checks"]["job_poller"] == body["checks"]["webhook_dispatcher"] == "ok")

        await wait_for(loops_ready, within=10, what="the loops' heartbeats")
        assert served.gateway.loops is not None
        await served.gateway.loops.stop()  # the loops end
        ready = await served.client.get("/readyz")
        assert ready.status_code == 503
        assert (
            ready.json()["checks"]["job_poller"] == ready.json()["checks"]["webhook_dispatcher"] == "stopped"
        )


def test_outgoing_webhooks_and_the_event_stream_are_documented() -> None:
    schema = create_app(Settings(_env_file=None)).openapi()
    webhook = schema["webhooks"]["job-event"]["post"]
    body = webhook["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/WebhookPayload")
    headers = {p["name"] for p in webhook["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert set(webhook["responses"]) == {"2XX", "410", "default"}  # what the receiver answers
    stream = schema["paths"]["/v1/jobs/{job_id}/events"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {p["name"] for p in stream["parameters"]} >= {"Last-Event-ID", "after"}
    get_job = schema["paths"]["/v1/jobs/{job_id}"]["get"]
    assert "Prefer" in {p["name"].title() for p in get_job["parameters"]}


async def test_queue_figures_as_json_and_prometheus(gateway: Served, png_uri: str) -> None:
    first = await gateway.submit(png_uri)
    await gateway.submit(png_uri)
    stats = (await gateway.client.get("/v1/admin/stats")).json()
    assert stats["jobs_by_status"]["queued"] == 2 and stats["due_jobs"] == 2
    assert stats["upstream_in_flight"] == {}
    await gateway.drive(first, "succeeded")
    stats = (await gateway.client.get("/v1/admin/stats")).json()
    assert stats["jobs_by_status"]["succeeded"] >= 1 and sum(stats["jobs_by_status"].values()) == 2
    metrics = await gateway.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for status, count in stats["jobs_by_status"].items():
        assert f'wan_gateway_jobs{{status="{status}"}} {float(count)}' in metrics.text
    assert "wan_gateway_oldest_due_job_age_seconds" in metrics.text
