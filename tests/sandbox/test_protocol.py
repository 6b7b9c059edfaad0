"""The sandbox speaks DashScope: routes, auth, headers, validation errors and the SDK's exact bodies."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.sandbox.config import SandboxConfig
from app.sandbox.server import SandboxServer
from tests.helpers import data_uri, image_bytes
from tests.sandbox.sandbox_helpers import (
    ASYNC,
    I2V_PATH,
    IMAGE,
    KF2V_PATH,
    assert_error,
    body_for,
    client_for,
    create,
    file_host,
    wait_status,
)

# --- routes and auth ---------------------------------------------------------------------------------

ROUTES: list[tuple[str, str]] = [
    ("POST", I2V_PATH),
    ("POST", KF2V_PATH),
    ("GET", "/tasks/abc"),
    ("POST", "/tasks/abc/cancel"),
    ("GET", "/tasks"),
    ("GET", "/uploads?action=getPolicy&model=wan2.6-i2v-flash"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_missing_key_is_401(sandbox: SandboxServer, method: str, path: str) -> None:
    async with client_for(sandbox, key=None) as anonymous:
        response = await anonymous.request(method, path, headers=ASYNC, json=body_for("wan2.6-i2v-flash"))
    assert_error(response, 401, "InvalidApiKey", "No API-key provided.")


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_wrong_key_is_401(sandbox: SandboxServer, method: str, path: str) -> None:
    async with client_for(sandbox, key="sk-wrong") as intruder:
        response = await intruder.request(method, path, headers=ASYNC, json=body_for("wan2.6-i2v-flash"))
    assert_error(response, 401, "InvalidApiKey", "Invalid API-key provided.")


async def test_any_configured_key_is_accepted(make_config: Callable[..., SandboxConfig]) -> None:
    async with (
        SandboxServer(make_config(api_keys=("sk-one", "sk-two"))) as server,
        client_for(server, key="sk-two") as second,
    ):
        assert (await second.get("/tasks")).status_code == 200


@pytest.mark.parametrize("value", [None, "disable", ""])
async def test_create_requires_async_header(client: httpx.AsyncClient, value: str | None) -> None:
    headers = {} if value is None else {"X-DashScope-Async": value}
    response = await client.post(I2V_PATH, headers=headers, json=body_for("wan2.6-i2v-flash"))
    assert_error(response, 403, "AccessDenied", "current user api does not support synchronous calls")


async def test_unknown_route_is_json_404(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    for url in ("/nowhere", "/services/aigc/text2video/video-synthesis", f"{sandbox.public_url}/x"):
        assert_error(await client.get(url), 404, "NotFound", "Not found!")


async def test_trailing_slashes_are_tolerated(make_config: Callable[..., SandboxConfig]) -> None:
    async with SandboxServer(make_config(pending_s=30)) as server, client_for(server) as client:
        await _trailing_slashes(client)


async def _trailing_slashes(client: httpx.AsyncClient) -> None:
    response = await client.post(I2V_PATH + "/", headers=ASYNC, json=body_for("wan2.2-i2v-flash"))
    assert response.status_code == 200
    task_id = response.json()["output"]["task_id"]
    assert (await client.get(f"/tasks/{task_id}/")).json()["output"]["task_id"] == task_id
    assert (await client.get("/tasks/")).json()["total"] == 1
    assert (await client.post(f"/tasks/{task_id}/cancel/")).status_code == 200
    policy = await client.get("/uploads/", params={"action": "getPolicy", "model": "wan2.2-i2v-flash"})
    assert policy.status_code == 200, policy.text


async def test_create_answer_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash"))
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"request_id", "output"}
    assert body["output"]["task_status"] == "PENDING"
    uuid.UUID(body["request_id"])
    uuid.UUID(body["output"]["task_id"])


# --- validation --------------------------------------------------------------------------------------


async def test_unknown_model(client: httpx.AsyncClient) -> None:
    response = await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan9-i2v"))
    assert_error(response, 400, "InvalidParameter", "Model not exist.")


@pytest.mark.parametrize(
    ("model", "path"), [("wan2.2-kf2v-flash", I2V_PATH), ("wan2.6-i2v-flash", KF2V_PATH)]
)
async def test_model_on_the_wrong_path(client: httpx.AsyncClient, model: str, path: str) -> None:
    response = await client.post(path, headers=ASYNC, json=body_for(model))
    assert_error(response, 400, "InvalidParameter", "url error, please check url!")


@pytest.mark.parametrize(
    ("model", "field"), [("wan2.6-i2v-flash", "img_url"), ("wan2.2-kf2v-flash", "first_frame_url")]
)
async def test_missing_image(client: httpx.AsyncClient, model: str, field: str) -> None:
    body = body_for(model)
    del body["input"][field]
    response = await client.post(KF2V_PATH if "kf2v" in model else I2V_PATH, headers=ASYNC, json=body)
    assert_error(response, 400, "InvalidParameter", f"Field required: input.{field}")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "InvalidParameter"),
        ([1, 2], "InvalidParameter"),
        ({"input": {"img_url": IMAGE}}, "BadRequest.EmptyModel"),
        ({"model": "wan2.6-i2v-flash"}, "BadRequest.EmptyInput"),
        ({"model": "wan2.6-i2v-flash", "input": {"img_url": IMAGE}, "parameters": [1]}, "InvalidParameter"),
    ],
)
async def test_malformed_bodies(client: httpx.AsyncClient, body: Any, code: str) -> None:
    content = body if isinstance(body, str) else None
    payload = None if isinstance(body, str) else body
    response = await client.post(I2V_PATH, headers=ASYNC, content=content, json=payload)
    assert_error(response, 400, code)


@pytest.mark.parametrize(
    ("model", "parameters", "extra_input", "field"),
    [
        ("wan2.6-i2v-flash", {"resolution": "480P"}, {}, "resolution"),
        ("wan2.6-i2v-flash", {"resolution": "720p"}, {}, "resolution"),
        ("wan2.2-i2v-plus", {"resolution": "720P"}, {}, "resolution"),
        ("wan2.6-i2v-flash", {"duration": 16}, {}, "duration"),
        ("wan2.6-i2v-flash", {"duration": 1}, {}, "duration"),
        ("wan2.6-i2v-us", {"duration": 7}, {}, "duration"),
        ("wan2.5-i2v-preview", {"duration": 15}, {}, "duration"),
        ("wan2.2-i2v-flash", {"duration": 10}, {}, "duration"),
        ("wan2.6-i2v-flash", {"duration": "5"}, {}, "duration"),
        ("wan2.6-i2v-flash", {"duration": True}, {}, "duration"),
        ("wan2.6-i2v-flash", {"shot_type": "triple"}, {}, "shot_type"),
        ("wan2.2-i2v-flash", {"shot_type": "single"}, {}, "shot_type"),
        ("wan2.6-i2v-flash", {"seed": -1}, {}, "seed"),
        ("wan2.6-i2v-flash", {"seed": 2_147_483_648}, {}, "seed"),
        ("wan2.6-i2v-flash", {"prompt_extend": "yes"}, {}, "prompt_extend"),
        ("wan2.6-i2v-flash", {"watermark": 1}, {}, "watermark"),
        ("wan2.6-i2v-flash", {"audio": "off"}, {}, "audio"),
        ("wan2.6-i2v-flash", {}, {"template": "flying"}, "template"),
        ("wanx2.1-i2v-turbo", {}, {"template": ""}, "template"),
        ("wan2.2-i2v-flash", {}, {"audio_url": "https://example.com/a.mp3"}, "audio_url"),
        ("wan2.6-i2v-flash", {}, {"prompt": 42}, "prompt"),
    ],
)
async def test_invalid_fields(
    client: httpx.AsyncClient, model: str, parameters: dict[str, Any], extra_input: dict[str, Any], field: str
) -> None:
    body = body_for(model, **parameters)
    body["input"].update(extra_input)
    response = await client.post(I2V_PATH, headers=ASYNC, json=body)
    assert_error(response, 400, "InvalidParameter")
    assert response.json()["message"].startswith(f"{field} is invalid")


@pytest.mark.parametrize(
    "parameters",
    [
        None,
        {},
        {"duration": 5.0, "seed": 0, "watermark": True, "prompt_extend": False},
        {"seed": 2_147_483_647, "shot_type": "multi", "audio": False},
        {"fps": 24, "size": "1280*720", "motion_strength": None, "seed": None, "foo": "bar"},
    ],
)
async def test_accepted_parameters(client: httpx.AsyncClient, parameters: dict[str, Any] | None) -> None:
    body = body_for("wan2.6-i2v-flash")
    if parameters is None:
        del body["parameters"]
    else:
        body["parameters"] = parameters
    response = await client.post(I2V_PATH, headers=ASYNC, json=body)
    assert response.status_code == 200, response.text


async def test_strict_mode_rejects_unknown_parameters(make_config: Callable[..., SandboxConfig]) -> None:
    async with SandboxServer(make_config(strict_parameters=True)) as server, client_for(server) as client:
        response = await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.6-i2v-flash", fps=24))
        assert_error(response, 400, "InvalidParameter")
        assert response.json()["message"].startswith("fps is invalid")
        # audio is a real parameter only for wan2.6-i2v-flash
        response = await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash", audio=False))
        assert response.json()["message"].startswith("audio is invalid")
        assert (
            await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.6-i2v-flash", audio=False))
        ).is_success


@pytest.mark.parametrize(("model", "limit"), [("wan2.6-i2v-flash", 1500), ("wan2.2-kf2v-flash", 800)])
async def test_long_prompts_are_truncated(client: httpx.AsyncClient, model: str, limit: int) -> None:
    body = body_for(model, resolution="720P", duration=5)
    body["input"]["prompt"] = "x" * 2000
    body["input"]["negative_prompt"] = "n" * 900
    body["parameters"]["audio"] = False if model == "wan2.6-i2v-flash" else None
    response = await client.post(KF2V_PATH if "kf2v" in model else I2V_PATH, headers=ASYNC, json=body)
    assert response.status_code == 200
    done = await wait_status(client, response.json()["output"]["task_id"], "SUCCEEDED")
    assert done["output"]["orig_prompt"] == "x" * limit


# --- media -------------------------------------------------------------------------------------------


async def test_oss_url_needs_resolve_header(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    sandbox.put_upload("dashscope-instant/abc/x.png", image_bytes())
    body = body_for("wan2.2-i2v-flash", image="oss://dashscope-instant/abc/x.png")
    response = await client.post(I2V_PATH, headers=ASYNC, json=body)
    assert_error(
        response,
        400,
        "InvalidParameter.DataInspection",
        "The media format is not supported or incorrect for the data inspection.",
    )
    resolved = await client.post(
        I2V_PATH, headers={**ASYNC, "X-DashScope-OssResourceResolve": "enable"}, json=body
    )
    assert resolved.status_code == 200


async def test_oss_url_of_nothing(client: httpx.AsyncClient) -> None:
    body = body_for("wan2.2-i2v-flash", image="oss://dashscope-instant/abc/missing.png")
    response = await client.post(
        I2V_PATH, headers={**ASYNC, "X-DashScope-OssResourceResolve": "enable"}, json=body
    )
    assert_error(response, 400, "InvalidParameter.DataInspection")
    assert "Failed to find" in response.json()["message"]


@pytest.mark.parametrize(
    ("image", "code", "fragment"),
    [
        (data_uri(300, 720), "InvalidParameter", "The image resolution is invalid"),
        (data_uri(1280, 2100), "InvalidParameter", "The image resolution is invalid"),
        (data_uri(640, 480, "GIF"), "InvalidParameter.DataInspection", "media format"),
        ("data:image/png;base64,iVBORw0KGgo=", "InvalidParameter.DataInspection", "media format"),
        ("data:image/png;base64,@@@@", "InvalidParameter.DataInspection", "media format"),
        ("data:image/png," + "abc", "InvalidParameter", "data URI is invalid"),
        ("ftp://example.com/a.png", "InvalidURL", "Invalid URL"),
    ],
)
async def test_bad_images(client: httpx.AsyncClient, image: str, code: str, fragment: str) -> None:
    response = await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash", image=image))
    assert_error(response, 400, code)
    assert fragment in response.json()["message"]


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "PNG"])
async def test_image_formats(client: httpx.AsyncClient, fmt: str) -> None:
    await create(client, image=data_uri(640, 480, fmt))


async def test_image_byte_limit(make_config: Callable[..., SandboxConfig]) -> None:
    async with SandboxServer(make_config(image_max_bytes=4096)) as server, client_for(server) as client:
        noisy = base64.b64encode(bytes(range(256)) * 40).decode()
        for image in (f"data:image/png;base64,{noisy}", data_uri(1280, 720, "BMP")):
            response = await client.post(
                I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash", image=image)
            )
            assert_error(response, 400, "InvalidParameter")
            assert "smaller than 0.00390625MB" in response.json()["message"]


async def test_loopback_images_are_fetched_and_inspected(client: httpx.AsyncClient) -> None:
    async with file_host(image_bytes(200, 200)) as host:
        response = await client.post(
            I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash", image=f"{host}/a.png")
        )
    assert_error(response, 400, "InvalidParameter")
    assert "resolution" in response.json()["message"]
    async with file_host(image_bytes(640, 480)) as host:
        await create(client, image=f"{host}/ok.png")
    # the host is gone now: the download fails
    response = await client.post(
        I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash", image=f"{host}/a.png")
    )
    assert_error(
        response,
        400,
        "InvalidParameter.DataInspection",
        "Unable to download the media resource during the data inspection process.",
    )


async def test_remote_images_are_assumed(client: httpx.AsyncClient) -> None:
    await create(client, image="https://example.com/never-fetched.png")


# --- Appendix A: what the official SDKs put on the wire -----------------------------------------------

A1 = {
    "model": "wan2.6-i2v-flash",
    "parameters": {
        "audio": False,
        "duration": 5,
        "seed": 1,
        "prompt_extend": True,
        "watermark": False,
        "resolution": "720P",
        "shot_type": "multi",
    },
    "input": {
        "prompt": "a cat running",
        "extend_prompt": True,
        "negative_prompt": "x",
        "function": "video-synthesis",
        "img_url": "https://example.com/a.png",
        "audio_url": "https://example.com/a.mp3",
    },
}
A7 = {
    "model": "wan2.2-kf2v-flash",
    "parameters": {"duration": 5, "prompt_extend": True, "watermark": True, "resolution": "720P"},
    "input": {
        "prompt": "blue monster",
        "extend_prompt": True,
        "function": "video-synthesis",
        "first_frame_url": "https://example.com/f.png",
        "last_frame_url": "https://example.com/l.png",
    },
}
A8_I2V = {
    "model": "wanx2.1-i2v-turbo",
    "parameters": {"watermark": True, "resolution": "720P"},
    "input": {
        "prompt": None,
        "extend_prompt": True,
        "template": "flying",
        "function": "video-synthesis",
        "img_url": "https://example.com/a.png",
    },
}
A8_KF2V = {
    "model": "wanx2.1-kf2v-plus",
    "parameters": {"watermark": True, "resolution": "720P"},
    "input": {
        "prompt": None,
        "extend_prompt": True,
        "template": "mech1",
        "function": "video-synthesis",
        "first_frame_url": "https://example.com/f.png",
    },
}
A13 = {
    "model": "wan2.6-i2v-flash",
    "input": {
        "prompt": "v2",
        "img_url": "https://example.com/a.png",
        "audio_url": "https://example.com/a.mp3",
        "negative_prompt": "blurry",
    },
    "parameters": {
        "shot_type": "multi",
        "audio": False,
        "seed": 7,
        "duration": 5,
        "resolution": "720P",
        "prompt_extend": True,
        "watermark": False,
    },
}
SDK_HEADERS = {
    "user-agent": "dashscope/2.0.2; python/3.11.7; platform/Linux; processor/",
    "Accept": "application/json; charset=utf-8",
    "X-DashScope-Async": "enable",
    "x-dashscope-sdk-client": "python-sdk/2.0.2/aigc",
    "x-dashscope-sdk-session-id": "0123456789abcdef0123456789abcdef",
    "Content-Type": "application/json; charset=utf-8",
}


def _a9_bodies() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    base_input = {"prompt": "p", "extend_prompt": True, "function": "video-synthesis"}
    # A.9's data URI carries only the 8-byte PNG signature, which no decoder accepts; the same form with a
    # decodable PNG is what the sandbox inspects (the literal one is refused in test_bad_images).
    return [
        (
            "data-uri",
            {"model": "wan2.6-i2v-flash", "parameters": {}, "input": {**base_input, "img_url": IMAGE}},
            {},
        ),
        (
            "oss",
            {
                "model": "wan2.6-i2v-flash",
                "parameters": {},
                "input": {**base_input, "img_url": "oss://dashscope-instant/abc/x.png"},
            },
            {"X-DashScope-OssResourceResolve": "enable"},
        ),
        (
            "extra-kwargs",
            {
                "model": "wan2.6-i2v-flash",
                "parameters": {"audio": True, "foo": "bar"},
                "input": {**base_input, "img_url": "https://example.com/a.png"},
            },
            {},
        ),
        (
            "seed-004",
            {
                "model": "wan2.6-i2v-flash",
                "parameters": {"fps": 24, "motion_strength": None, "size": "1280*720", "duration": 4},
                "input": {**base_input, "img_url": "https://example.com/a.png"},
            },
            {},
        ),
        (
            "extra-input+workspace+inspection",
            {
                "model": "wan2.6-i2v-flash",
                "parameters": {},
                "input": {
                    **base_input,
                    "img_url": "https://example.com/a.png",
                    "audio_url": "https://example.com/a.mp3",
                },
            },
            {"X-DashScope-WorkSpace": "ws-123", "X-DashScope-DataInspection": "enable"},
        ),
    ]


SDK_BODIES: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    ("A.1", I2V_PATH, A1, {}),
    ("A.7", KF2V_PATH, A7, {}),
    ("A.8-i2v", I2V_PATH, A8_I2V, {}),
    ("A.8-kf2v", KF2V_PATH, A8_KF2V, {}),
    ("A.13-v2", I2V_PATH, A13, {"Content-Type": "application/json", "Accept": "*/*"}),
    *((f"A.9-{name}", I2V_PATH, body, headers) for name, body, headers in _a9_bodies()),
]


@pytest.mark.parametrize(("name", "path", "body", "headers"), SDK_BODIES, ids=[row[0] for row in SDK_BODIES])
async def test_sdk_bodies_are_accepted(
    sandbox: SandboxServer,
    client: httpx.AsyncClient,
    name: str,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    sandbox.put_upload("dashscope-instant/abc/x.png", image_bytes())
    content = json.dumps(body).encode()  # the 1.x SDK's exact serialization (", " and ": " separators)
    response = await client.post(path, headers={**SDK_HEADERS, **headers}, content=content)
    assert response.status_code == 200, response.text
    assert response.json()["output"]["task_status"] == "PENDING"


async def test_aiohttp_sdk_cancel_with_junk_body(make_config: Callable[..., SandboxConfig]) -> None:
    """A.12: trailing slash, JSON content type and `{"model": "", "parameters": {}, "input": ""}`."""
    async with SandboxServer(make_config(pending_s=30)) as server, client_for(server) as client:
        await _cancel_with_junk_body(client)


async def _cancel_with_junk_body(client: httpx.AsyncClient) -> None:
    # Only a PENDING task can be canceled: the default fixture's task leaves PENDING after 50 ms, which a
    # loaded machine can take between the create and the cancel.
    task_id = await create(client)
    response = await client.post(
        f"/tasks/{task_id}/cancel/",
        headers={"Content-Type": "application/json"},
        content=b'{"model": "", "parameters": {}, "input": ""}',
    )
    assert response.status_code == 200
    assert set(response.json()) == {"request_id"}
    assert (await client.get(f"/tasks/{task_id}/")).json()["output"]["task_status"] == "CANCELED"
