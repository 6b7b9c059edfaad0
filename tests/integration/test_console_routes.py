"""The console's HTTP side, without a browser: `/` leads to `/console`; every page is the same HTML for
everyone (no key needed, the hooks the browser tests use, a strict CSP); static files are cached and
revalidated; the console's JSON helpers (`whoami`, a job's image as sent, re-run) are authenticated and
scoped to the caller's tenant like `/v1`."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Served, serve
from tests.helpers import data_uri, image_bytes
from tests.integration.test_tenants import ALICE, BOB, OPS, as_, keyed


async def test_console_pages_assets_and_helpers(tmp_path: Path, database_url: str) -> None:
    async with serve(keyed(tmp_path, database_url)) as served:
        client = served.client
        root = await client.get("/", follow_redirects=False)
        assert root.status_code == 307 and root.headers["location"] == "/console"

        hooks = ("api-key", "sign-in", "new-job")
        for path in ("/console", "/console/new", "/console/jobs/job_x", "/console/spend", "/console/health"):
            page = await client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
            assert all(f'data-testid="{hook}"' in page.text for hook in hooks), path
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert "<main" in page.text and 'aria-label="Console"' in page.text
            assert 'data-auth="on"' in page.text  # a key is needed: the sign-in form shows
        assert (await client.get("/console?status=running&utm_source=x")).status_code == 200
        assert (await client.head("/console/new")).status_code == 200
        new = (await client.get("/console/new")).text
        assert all(f'data-testid="{hook}"' in new for hook in ("prompt", "image-file", "submit-job"))
        assert 'data-testid="job-status"' in (await client.get("/console/jobs/job_x")).text

        script = new.split('<script type="module" src="')[1].split('"')[0]
        asset = await client.get(script)
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
        assert asset.headers["cache-control"] == "public, max-age=86400"
        again = await client.get(script, headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304

        assert (await client.get("/console/api/whoami")).status_code == 401
        alice = (await client.get("/console/api/whoami", headers=as_(ALICE))).json()
        assert alice == {"tenant": "alice", "key_name": "alice", "admin": False}
        assert (await client.get("/console/api/whoami", headers=as_(OPS))).json()["admin"] is True

        body = {"prompt": "a cat", "duration": 3, "reference_image": data_uri(), "seed": 7}
        created = await client.post("/v1/jobs", json=body, headers=as_(ALICE))
        job = created.json()
        image = await client.get(f"/console/api/jobs/{job['id']}/images/reference", headers=as_(ALICE))
        assert image.status_code == 200 and image.content == image_bytes()
        assert image.headers["content-type"] == "image/png"
        for key, which in ((BOB, "reference"), (ALICE, "last")):
            missing = await client.get(f"/console/api/jobs/{job['id']}/images/{which}", headers=as_(key))
            assert missing.status_code == 404, missing.text

        rerun = await client.post(f"/console/api/jobs/{job['id']}/rerun", headers=as_(ALICE))
        assert rerun.status_code == 202, rerun.text
        copy = rerun.json()
        assert copy["id"] != job["id"] and copy["status"] == "queued" and not copy["cached"]
        kept = ("prompt", "duration", "seed", "reference_image")
        assert {k: copy["request"][k] for k in kept} == {k: job["request"][k] for k in kept}
        others = await client.post(f"/console/api/jobs/{job['id']}/rerun", headers=as_(BOB))
        assert others.status_code == 404


async def test_without_keys_the_console_needs_no_sign_in(gateway: Served) -> None:
    page = await gateway.client.get("/console")
    assert 'data-auth="off"' in page.text  # console.js signs in by itself (the sandbox out of the box)
    assert (await gateway.client.get("/console/api/whoami")).json()["admin"] is True
