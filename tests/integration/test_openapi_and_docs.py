"""The committed OpenAPI matches the app; /docs renders from local assets (no CDN)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.config import Settings
from app.main import create_app
from tests.conftest import Served

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
    assert ready.json()["checks"] == {"database": "ok", "storage": "ok", "job_loop": "disabled"}
