"""Signed, key-less download links with client keys configured: the `dashscope` SDK's `video_url` downloads
with a plain GET (as DashScope's signed OSS URLs do), the signature is the only authority, and every process
on the database signs alike (the key is generated once and kept there).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dashscope
import httpx
import pytest
from dashscope import VideoSynthesis

from app import logsafety
from app.db.engine import create_engine, session_factory
from app.links import LinkSigner, load_secret
from tests.compat.test_dashscope_sdk import sdk
from tests.conftest import Served, make_settings, serve
from tests.helpers import data_uri

KEY = "alice-key-" + "a" * 32


@pytest.fixture
async def facade(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    settings = make_settings(tmp_path, database_url, workers_enabled=True, gateway_api_keys=f"alice:{KEY}")
    async with serve(settings) as served:
        monkeypatch.setattr(dashscope, "base_http_api_url", f"{served.url}/api/v1")
        yield served


def code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return str(response.json()["code"])


async def test_the_sdk_video_url_downloads_without_a_key_and_only_as_signed(
    facade: Served, tmp_path: Path, database_url: str
) -> None:
    rsp = await sdk(
        VideoSynthesis.call,
        api_key=KEY,
        model="wan2.6-i2v-flash",
        prompt="a cat",
        img_url=data_uri(640, 360),
        resolution="720P",
        duration=2,
    )
    assert rsp.status_code == 200 and rsp.output.task_status == "SUCCEEDED", rsp
    task_id, url = rsp.output.task_id, rsp.output.video_url
    parts = urlsplit(url)
    assert url.startswith(f"{facade.url}/v1/links/{task_id}/video?"), url
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    expires = int(query["expires"])
    assert expires % 3600 == 0 and expires >= time.time() + 7 * 24 * 3600 - 5  # LINK_TTL_S, rounded up

    # A plain GET, no Authorization: the MP4, with Range and HEAD as /content answers them.
    async with httpx.AsyncClient(timeout=30) as plain:
        whole = await plain.get(url)
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert whole.content[4:8] == b"ftyp"
        part = await plain.get(url, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == whole.content[:100]
        assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"
        head = await plain.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(whole.content))
        assert (await plain.get(url, headers={"If-None-Match": whole.headers["etag"]})).status_code == 304
        # /content itself still wants the key.
        assert code(await plain.get(f"{facade.url}/v1/jobs/{task_id}/content"), 401)

        # The signature covers the job, the variant and the expiry.
        base = f"{facade.url}/v1/links"
        sig, exp = query["signature"], query["expires"]
        tampered = ("A" if sig[0] != "A" else "B") + sig[1:]
        assert code(await plain.get(f"{base}/{task_id}/video?expires={exp}&signature={tampered}"), 403) == (
            "link_invalid"
        )
        assert code(await plain.get(f"{base}/{task_id}/video?expires={expires + 3600}&signature={sig}"), 403)
        assert code(await plain.get(f"{base}/{task_id}/thumbnail?expires={exp}&signature={sig}"), 403)
        other = await facade.client.post(
            "/v1/jobs",
            json={"prompt": "a dog", "size": "1280*720", "reference_image": data_uri(640, 360)},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        other_id = other.json()["id"]
        assert code(await plain.get(f"{base}/{other_id}/video?expires={exp}&signature={sig}"), 403)
        assert code(await plain.get(f"{base}/{task_id}/video?signature={sig}"), 422)  # expires missing

        # A fresh signer on the same database (another replica, a restart) signs alike: the key is shared.
        engine = create_engine(database_url)
        try:
            secret = await load_secret(session_factory(engine), None)
        finally:
            await engine.dispose()
        assert logsafety.redact(f"key {secret}") == "key ***"  # the generated key never reaches a log
        replica = LinkSigner(secret, public_base_url=facade.url, ttl_s=7 * 24 * 3600)
        assert replica.verify(task_id, "video", expires, query["signature"])
        assert urlsplit(replica.url(task_id)).path == parts.path
        thumb = await plain.get(replica.url(task_id, "thumbnail"))
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        # Signed a month ago for a week: expired (the signature is good, the time is past).
        month_ago = LinkSigner(
            secret, public_base_url=facade.url, ttl_s=7 * 24 * 3600, clock=lambda: time.time() - 30 * 86400
        )
        assert not month_ago.verify(task_id, "video", month_ago.expires(), "x")
        assert code(await plain.get(month_ago.url(task_id)), 403) == "link_expired"

        # The native job keeps /content as video_url and adds the signed link beside it.
        auth = {"Authorization": f"Bearer {KEY}"}
        job = (await facade.client.get(f"/v1/jobs/{task_id}", headers=auth)).json()
        assert job["result"]["video_url"] == f"{facade.url}/v1/jobs/{task_id}/content"
        assert urlsplit(job["result"]["signed_url"]).path == parts.path
        assert job["result"]["signed_url_expires_at"] is not None

        # A deleted job's link is a 404, signature or not.
        assert (await facade.client.delete(f"/v1/jobs/{task_id}", headers=auth)).status_code == 204
        assert code(await plain.get(url), 404) == "not_found"
