"""Fault injection: the grammar, request faults per operation, create_after, task outcomes, control API."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.sandbox.config import SandboxConfig
from app.sandbox.faults import FaultRule, parse_faults
from app.sandbox.server import SandboxServer
from app.storage.probe import ProbeError, probe_video
from app.tls import client_context
from tests.sandbox.sandbox_helpers import (
    ASYNC,
    I2V_PATH,
    TLS,
    assert_error,
    body_for,
    client_for,
    create,
    task,
    wait_status,
)

# --- grammar -----------------------------------------------------------------------------------------


def test_grammar() -> None:
    rules = parse_faults(
        "create:429=0.3, get:502=0.1,task:FAILED=0.2,task:FAILED/InternalError=0.1,"
        "create_after:500=0.05,list:slow/1.5*2,download:drop,task:stuck*1,create:500/ModelServingError"
    )
    assert [rule.spec() for rule in rules] == [
        "create:429=0.3",
        "get:502=0.1",
        "task:FAILED=0.2",
        "task:FAILED/InternalError=0.1",
        "create_after:500=0.05",
        "list:slow/1.5*2",
        "download:drop",
        "task:stuck*1",
        "create:500/ModelServingError",
    ]
    assert rules[5].delay_s == 1.5
    assert rules[5].times == 2
    assert rules[0].status == 429
    assert parse_faults("") == []


@pytest.mark.parametrize(
    "text",
    [
        "create",
        "create:",
        "fetch:500",
        "create:200",
        "create:600",
        "task:EXPLODE",
        "get:429=1.5",
        "get:slow/abc",
        "get:500*x",
        "task:duration/0",
        "task:duration/2.5",
        "task:size/641x360",
        "task:size/640",
    ],
)
def test_grammar_errors(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_faults(text)


# --- request faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "status", "code"),
    [
        ("create:429", 429, "Throttling.RateQuota"),
        ("create:500", 500, "InternalError"),
        ("create:503", 503, "ModelUnavailable"),
        ("create:500/ModelServingError", 500, "ModelServingError"),
        ("create:400/DataInspectionFailed", 400, "DataInspectionFailed"),
    ],
)
async def test_create_faults_answer_json(
    sandbox: SandboxServer, client: httpx.AsyncClient, rule: str, status: int, code: str
) -> None:
    sandbox.faults.add(f"{rule}*1")
    assert_error(await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash")), status, code)
    assert (await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash"))).status_code == 200
    assert sandbox.stats.created_total == 1
    assert sandbox.stats.injected[f"create:{status}"] == 1
    assert sandbox.faults.rules == []  # spent


async def test_throttling_message(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    sandbox.faults.add("get:429*1")
    response = await client.get("/tasks/x")
    assert_error(
        response, 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."
    )


async def test_bad_gateway_is_html(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    sandbox.faults.add("get:502*2", "list:504*1")
    for _ in range(2):
        response = await client.get("/tasks/x")
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("text/html")
        assert response.text == "<html>Bad Gateway</html>"
    assert (await client.get("/tasks")).text == "<html>Gateway Timeout</html>"
    assert (await client.get("/tasks/x")).status_code == 200
    assert sandbox.stats.snapshot()["injected_5xx"] == 3


@pytest.mark.parametrize(
    ("op", "method", "path"),
    [
        ("cancel", "POST", "/tasks/x/cancel"),
        ("list", "GET", "/tasks"),
        ("policy", "GET", "/uploads?action=getPolicy&model=wan2.2-i2v-flash"),
    ],
)
async def test_other_operations(
    sandbox: SandboxServer, client: httpx.AsyncClient, op: str, method: str, path: str
) -> None:
    sandbox.faults.add(f"{op}:503*1")
    assert_error(await client.request(method, path), 503, "ModelUnavailable")
    assert (await client.request(method, path)).status_code != 503


async def test_slow_requests(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    sandbox.faults.add("get:slow/0.3*1")
    started = time.monotonic()
    response = await client.get("/tasks/x")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    sandbox.faults.add("get:slow/0.6*1")
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/tasks/x", timeout=0.2)


async def test_dropped_requests(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    sandbox.faults.add("get:drop*1")
    with pytest.raises(httpx.TransportError):
        await client.get("/tasks/x")
    assert (await client.get("/tasks/x")).status_code == 200


async def test_download_faults(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    done = await wait_status(client, await create(client), "SUCCEEDED")
    sandbox.faults.add("download:500*1", "download:502*1")
    first = await client.get(done["output"]["video_url"])
    assert first.status_code == 500
    assert first.headers["content-type"] == "application/xml"
    assert (await client.get(done["output"]["video_url"])).status_code == 502
    assert (await client.get(done["output"]["video_url"])).status_code == 200


# --- create_after: the task exists although the create failed ------------------------------------------


@pytest.mark.parametrize("rule", ["create_after:500*1", "create_after:drop*1", "create_after:slow/0.6*1"])
async def test_create_after(sandbox: SandboxServer, client: httpx.AsyncClient, rule: str) -> None:
    sandbox.faults.add(rule)
    try:
        response = await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash"), timeout=0.3)
        assert_error(response, 500, "InternalError")
    except (httpx.TransportError, httpx.TimeoutException):
        assert not rule.startswith("create_after:500")
    assert sandbox.stats.created_total == 1
    listed = (await client.get("/tasks", params={"model_name": "wan2.2-i2v-flash"})).json()
    assert listed["total"] == 1  # a gateway reconciles through the list instead of resubmitting
    assert (await wait_status(client, listed["data"][0]["task_id"]))["output"]["task_status"] == "SUCCEEDED"


async def test_create_after_spares_rejected_creates(
    sandbox: SandboxServer, client: httpx.AsyncClient
) -> None:
    sandbox.faults.add("create_after:500*1")
    assert (await client.post(I2V_PATH, headers=ASYNC, json=body_for("nope"))).status_code == 400
    assert len(sandbox.faults.rules) == 1  # still armed for the next real create
    assert (await client.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash"))).status_code == 500


# --- task outcomes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "status", "code"),
    [
        ("task:FAILED*1", "FAILED", "DataInspectionFailed"),
        ("task:FAILED/InternalError*1", "FAILED", "InternalError"),
        ("task:UNKNOWN*1", "UNKNOWN", None),
    ],
)
async def test_task_faults(
    sandbox: SandboxServer, client: httpx.AsyncClient, rule: str, status: str, code: str | None
) -> None:
    sandbox.faults.add(rule)
    faulted, normal = await create(client), await create(client)
    output = (await wait_status(client, faulted))["output"]
    assert output["task_status"] == status
    assert output.get("code") == code
    assert (await wait_status(client, normal))["output"]["task_status"] == "SUCCEEDED"
    assert sandbox.stats.injected[rule.split("/")[0].split("*")[0]] == 1


async def test_faults_from_configuration(make_config: Callable[..., SandboxConfig]) -> None:
    config = make_config(faults="task:FAILED/InternalError*1,task:stuck*1,get:500*1")
    async with SandboxServer(config) as server, client_for(server) as client:
        failed, stuck = await create(client), await create(client)
        assert_error(await client.get(f"/tasks/{failed}"), 500, "InternalError")
        assert (await wait_status(client, failed))["output"]["message"].startswith("An internal error")
        assert (await task(client, stuck))["output"]["task_status"] == "RUNNING"


async def test_probabilities_are_seeded(make_config: Callable[..., SandboxConfig]) -> None:
    async def statuses() -> list[int]:
        async with (
            SandboxServer(make_config(faults="get:429=0.5", fault_seed=7)) as server,
            client_for(server) as client,
        ):
            return [(await client.get("/tasks/x")).status_code for _ in range(30)]

    first = await statuses()
    assert 0 < first.count(429) < 30
    assert await statuses() == first


async def test_prompt_markers_win_over_rules(sandbox: SandboxServer, client: httpx.AsyncClient) -> None:
    sandbox.faults.add("task:FAILED")
    body = body_for("wan2.2-i2v-flash")
    body["input"]["prompt"] = "[sandbox:slow/1]"
    task_id = (await client.post(I2V_PATH, headers=ASYNC, json=body)).json()["output"]["task_id"]
    assert (await wait_status(client, task_id))["output"]["task_status"] == "SUCCEEDED"
    assert sandbox.faults.rules[0].fired == 0


async def test_served_video_faults(sandbox: SandboxServer, client: httpx.AsyncClient, tmp_path: Path) -> None:
    """`duration`, `size` and `corrupt` change the MP4 a SUCCEEDED task serves, not what it reports."""
    body = body_for("wan2.2-i2v-flash")
    body["input"]["prompt"] = "a cat [sandbox:duration/1] [sandbox:size/64x48]"
    other = (await client.post(I2V_PATH, headers=ASYNC, json=body)).json()["output"]["task_id"]
    body["input"]["prompt"] = "a cat [sandbox:duration/1] [sandbox:size/64x48] [sandbox:corrupt]"
    corrupt = (await client.post(I2V_PATH, headers=ASYNC, json=body)).json()["output"]["task_id"]

    done = await wait_status(client, other, "SUCCEEDED")
    assert done["usage"]["duration"] == 5  # upstream still reports (and bills) what was asked
    served = tmp_path / "served.mp4"
    served.write_bytes((await client.get(done["output"]["video_url"])).content)
    probe = probe_video(served)
    assert probe.duration_s == pytest.approx(1.0, abs=0.05)
    assert (probe.width, probe.height) == (64, 48)

    damaged = tmp_path / "damaged.mp4"
    response = await client.get((await wait_status(client, corrupt, "SUCCEEDED"))["output"]["video_url"])
    damaged.write_bytes(response.content)
    assert len(response.content) == served.stat().st_size  # complete, only its middle is gone
    with pytest.raises(ProbeError, match="cannot be decoded"):
        probe_video(damaged)


async def test_nul_fault_puts_unstorable_text_in_the_answers(
    sandbox: SandboxServer, client: httpx.AsyncClient
) -> None:
    """`nul`: U+0000 and a lone surrogate (sent as JSON escapes) in the texts of a task's answer."""
    body = body_for("wan2.2-i2v-flash")
    body["input"]["prompt"] = "[sandbox:FAILED/InternalError] [sandbox:nul]"
    failed = (await client.post(I2V_PATH, headers=ASYNC, json=body)).json()["output"]["task_id"]
    output = (await wait_status(client, failed))["output"]
    assert output["code"] == "InternalError\x00\ud800"
    assert output["message"].startswith("An internal error") and output["message"].endswith("\x00\ud800")
    raw = (await client.get(f"/tasks/{failed}")).content
    assert b"\\u0000\\ud800" in raw  # as escapes: raw UTF-8 cannot carry a lone surrogate

    sandbox.faults.add("task:nul*1")
    output = (await wait_status(client, await create(client, prompt_extend=True)))["output"]
    assert output["task_status"] == "SUCCEEDED"
    assert output["orig_prompt"] == "a cat running\x00\ud800"
    assert output["actual_prompt"].startswith("a cat running")
    assert output["actual_prompt"].endswith("\x00\ud800")
    assert sandbox.stats.injected["task:nul"] == 1


# --- control API -------------------------------------------------------------------------------------


async def test_control_api(sandbox: SandboxServer) -> None:
    async with (
        httpx.AsyncClient(
            base_url=sandbox.public_url,
            headers={"Authorization": f"Bearer {sandbox.api_key}"},
            trust_env=False,
            verify=client_context(trust_env=False),
        ) as control,
        client_for(sandbox) as client,
    ):
        assert (await control.get("/_sandbox/faults")).json()["rules"] == []
        added = await control.post("/_sandbox/faults", json={"spec": "create:429", "times": 2})
        assert added.status_code == 200
        assert added.json()["added"][0]["spec"] == "create:429*2"
        await control.post(
            "/_sandbox/faults", json={"rules": [{"target": "get", "action": "503", "times": 1}, "list:500*1"]}
        )
        assert [r["spec"] for r in (await control.get("/_sandbox/faults")).json()["rules"]] == [
            "create:429*2",
            "get:503*1",
            "list:500*1",
        ]
        replaced = await control.post("/_sandbox/faults", json={"rules": ["get:500*1"], "replace": True})
        assert [r["spec"] for r in replaced.json()["rules"]] == ["get:500*1"]
        assert_error(
            await control.post("/_sandbox/faults", json={"spec": "get:700"}), 400, "InvalidParameter"
        )
        assert_error(await control.post("/_sandbox/faults", content=b"{"), 400, "InvalidParameter")

        assert (await client.get("/tasks/x")).status_code == 500
        stats = (await control.get("/_sandbox/stats")).json()
        assert stats["requests"] == {"get": 1}
        assert stats["injected"] == {"get:500": 1}
        assert stats["injected_5xx"] == 1
        assert stats["upstream_calls"] == 1
        assert stats["created_total"] == 0

        assert (await control.delete("/_sandbox/faults")).json()["rules"] == []
        assert (await control.delete("/_sandbox/stats")).json()["upstream_calls"] == 0
        assert sandbox.stats.upstream_calls == 0  # control calls are not upstream calls
        async with httpx.AsyncClient(base_url=sandbox.public_url, trust_env=False, verify=TLS) as anonymous:
            assert_error(await anonymous.get("/_sandbox/stats"), 401, "InvalidApiKey")


def test_rule_validation() -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultRule("get", "500", probability=2)
    assert FaultRule("task", "failed").action == "FAILED"
