"""The OSS stand-ins: temporary uploads resolved as oss:// inputs, and signed, expiring result URLs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from app.sandbox.config import SandboxConfig
from app.sandbox.server import SandboxServer
from tests.helpers import image_bytes, wait_for
from tests.sandbox.sandbox_helpers import (
    ASYNC,
    I2V_PATH,
    TLS,
    body_for,
    client_for,
    create,
    probe,
    wait_status,
)

OSS = {**ASYNC, "X-DashScope-OssResourceResolve": "enable"}


async def _policy(client: httpx.AsyncClient, model: str = "wan2.6-i2v-flash") -> dict[str, Any]:
    response = await client.get("/uploads", params={"action": "getPolicy", "model": model})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"request_id", "data"}
    data: dict[str, Any] = body["data"]
    return data


def _form(policy: dict[str, Any], key: str, **overrides: str) -> dict[str, str]:
    """The fields of A.6, in the SDK's order (the file goes last)."""
    return {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": key,
        "x-oss-object-acl": policy["x_oss_object_acl"],
        "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        "x-oss-content-type": "image/png",
        **overrides,
    }


async def _upload(policy: dict[str, Any], key: str, data: bytes, **overrides: str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, verify=TLS) as oss:  # no Authorization, like the SDK
        return await oss.post(
            policy["upload_host"],
            headers={"Accept": "application/json"},
            data=_form(policy, key, **overrides),
            files={"file": ("x.png", data, "image/png")},
        )


async def test_policy_shape(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    policy = await _policy(client)
    assert policy["upload_host"] == f"{sandbox.public_url}/oss"
    assert policy["upload_dir"].startswith("dashscope-instant/")
    assert policy["expire_in_seconds"] == 300
    assert {"max_file_size_mb", "capacity_limit_mb"} <= set(policy)
    assert (policy["x_oss_object_acl"], policy["x_oss_forbid_overwrite"]) == ("private", "true")


@pytest.mark.parametrize(
    "params",
    [
        {"action": "getPolicy"},
        {"action": "nope", "model": "wan2.6-i2v-flash"},
        {"action": "getPolicy", "model": "wan0"},
    ],
)
async def test_policy_errors(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get("/uploads", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameter"


async def test_upload_then_create_with_oss_url(client: httpx.AsyncClient, tmp_path: Path) -> None:
    """A.6: getPolicy, multipart POST to upload_host, create with oss://key: the real image is used."""
    policy = await _policy(client)
    key = f"{policy['upload_dir']}/x.png"
    response = await _upload(policy, key, image_bytes(750, 1000))
    assert (response.status_code, response.content) == (200, b"")

    body = body_for("wan2.6-i2v-flash", image=f"oss://{key}", resolution="720P", duration=2, audio=False)
    created = await client.post(I2V_PATH, headers=OSS, json=body)
    assert created.status_code == 200, created.text
    done = await wait_status(client, created.json()["output"]["task_id"], "SUCCEEDED")
    path = tmp_path / "out.mp4"
    path.write_bytes((await client.get(done["output"]["video_url"])).content)
    assert (probe(path)["width"], probe(path)["height"]) == (816, 1104)


async def test_oss_audio_url_must_exist(client: httpx.AsyncClient) -> None:
    body = body_for("wan2.6-i2v-flash")
    body["input"]["audio_url"] = "oss://dashscope-instant/none/a.mp3"
    response = await client.post(I2V_PATH, headers=OSS, json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameter.DataInspection"


async def test_upload_refusals(client: httpx.AsyncClient) -> None:
    policy = await _policy(client)
    key = f"{policy['upload_dir']}/x.png"
    bad_signature = await _upload(policy, key, b"x", Signature="forged")
    assert bad_signature.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in bad_signature.text
    outside = await _upload(policy, "dashscope-instant/elsewhere/x.png", b"x")
    assert outside.status_code == 403
    assert "Policy Condition failed" in outside.text
    assert (await _upload(policy, key, b"x")).status_code == 200
    again = await _upload(policy, key, b"y")
    assert again.status_code == 409
    assert "<Code>FileAlreadyExists</Code>" in again.text
    assert (
        await _upload(
            policy,
            f"{policy['upload_dir']}/y.png",
            b"y",
            **{"x-oss-forbid-overwrite": "false", "success_action_status": "204"},
        )
    ).status_code == 204
    async with httpx.AsyncClient(trust_env=False, verify=TLS) as oss:
        missing = await oss.post(policy["upload_host"], data={"key": key})
    assert missing.status_code == 400


async def test_expired_policy(make_config: Callable[..., SandboxConfig]) -> None:
    async with SandboxServer(make_config(policy_ttl_s=-1)) as server, client_for(server) as client:
        policy = await _policy(client)
        response = await _upload(policy, f"{policy['upload_dir']}/x.png", b"x")
        assert response.status_code == 403
        assert "Policy expired." in response.text


# --- result URLs -------------------------------------------------------------------------------------


async def test_video_url_expires(make_config: Callable[..., SandboxConfig]) -> None:
    async with SandboxServer(make_config(video_ttl_s=0)) as server, client_for(server) as client:
        done = await wait_status(client, await create(client), "SUCCEEDED")
        url = done["output"]["video_url"]
        expires = int(parse_qs(urlsplit(url).query)["Expires"][0])
        assert expires >= int(server.emulator.config.video_ttl_s)

        async def refused() -> httpx.Response | None:
            response = await client.get(url)
            return response if response.status_code == 403 else None

        expired = await wait_for(refused, within=3, what="the URL to expire")
        assert expired.headers["content-type"] == "application/xml"
        assert "<Code>AccessDenied</Code>" in expired.text
        assert "<Message>Request has expired.</Message>" in expired.text


async def test_video_url_signature(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    done = await wait_status(client, await create(client), "SUCCEEDED")
    url = urlsplit(done["output"]["video_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    base = f"{url.scheme}://{url.netloc}{url.path}"
    tampered = await client.get(f"{base}?{urlencode({**query, 'Expires': str(int(query['Expires']) + 1)})}")
    assert tampered.status_code == 403
    assert "SignatureDoesNotMatch" in tampered.text
    assert (await client.get(base)).status_code == 403
    other_task = base.replace(".mp4", "0.mp4")
    assert (await client.get(f"{other_task}?{url.query}")).status_code == 403
    # a valid signature for a task that never succeeded is a missing object
    sig = sandbox.emulator.video_url(sandbox.public_url, "ghost", 4_000_000_000)
    assert (await client.get(sig)).status_code == 404
