"""The gateway's logs as an operator follows them: one access line per request in every mode, the request's
id on every line written while serving it (and echoed in `X-Request-ID`), the job's ids on every line about
the job from POST to webhook, in both LOG_FORMATs — and never a key, a webhook secret or a signed URL's
query string, whichever format writes the line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from app.logformat import formatter
from app.serving import ACCESS_LOGGER
from tests.conftest import make_settings, serve
from tests.helpers import data_uri
from tests.receiver import receiver

#: Client keys of no recognisable shape: only the exact-secret rule and the query rule can catch them.
KEY = "Q7rT0pLm9XcV2bN8kJ4hG6fD1sA3zW5y"
OTHER = "unconfigured-and-unknown-shape-value"
UPSTREAM = "Zx81upstreamKeyOfNoShape0042"  # the embedded sandbox's configured key: the upstream key
WEBHOOK = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = (KEY, OTHER, UPSTREAM, WEBHOOK, WEBHOOK.removeprefix("whsec_"))
AUTH = {"Authorization": f"Bearer {KEY}"}
OSS_URL = (
    "https://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/1d/ab/result.mp4"
    "?Expires=1796272176&OSSAccessKeyId=LTAI5tQZd8AFcTF7rUbSmD1q&Signature=q8aWn%2FkT1r9s0mLx%3D"
)


@pytest.fixture
def outputs(caplog: pytest.LogCaptureFixture) -> Iterator[dict[str, io.StringIO]]:
    """What the process would write in each LOG_FORMAT: the real formatters on the real records."""
    caplog.set_level(logging.INFO)
    streams = {name: io.StringIO() for name in ("json", "text")}
    handlers = []
    for name, stream in streams.items():
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter(name))
        handlers.append(handler)
        logging.getLogger().addHandler(handler)
    yield streams
    for handler in handlers:
        logging.getLogger().removeHandler(handler)


async def test_without_sandbox_every_request_has_one_access_line(
    tmp_path: Path, database_url: str, outputs: dict[str, io.StringIO]
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        dashscope_sandbox=False,
        dashscope_api_key=SecretStr("sk-" + "0" * 32),
        dashscope_base_url="http://127.0.0.1:9/api/v1",  # never called
        gateway_api_keys=SecretStr(f"alice:{KEY}"),
    )
    async with serve(settings) as served:
        c = served.client
        answers = [
            await c.get("/healthz"),
            await c.get("/v1/jobs", headers=AUTH),
            await c.get(f"/v1/jobs/job_x?api_key={KEY}", headers=AUTH),
            await c.get(f"/v1/jobs?token={OTHER}", headers=AUTH),
            await c.get("/nowhere"),
        ]
    assert [a.status_code for a in answers] == [200, 200, 422, 422, 404]
    access = [
        line
        for line in map(json.loads, outputs["json"].getvalue().splitlines())
        if line["logger"] == ACCESS_LOGGER
    ]
    assert [line["path"] for line in access] == [
        "/healthz", "/v1/jobs", "/v1/jobs/job_x?api_key=***", "/v1/jobs?token=***", "/nowhere",
    ]  # fmt: skip
    assert [line["request_id"] for line in access] == [a.headers["x-request-id"] for a in answers]
    for text in (outputs["json"].getvalue(), outputs["text"].getvalue(), *(a.text for a in answers)):
        assert KEY not in text and OTHER not in text


async def test_one_job_from_post_to_webhook_in_both_formats(
    tmp_path: Path, database_url: str, outputs: dict[str, io.StringIO]
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        sandbox_api_key=SecretStr(UPSTREAM),
        gateway_api_keys=SecretStr(f"alice:{KEY}"),
        webhook_secret=WEBHOOK,
        allow_private_urls=True,  # the receiver listens on 127.0.0.1
    )
    async with serve(settings) as served, receiver(WEBHOOK) as hook:
        c = served.client
        body = {"prompt": "a cat", "duration": 2, "size": "1280*720", "reference_image": data_uri(640, 360)}
        posted = await c.post(
            "/v1/jobs",
            json={**body, "webhook_url": hook.url},
            headers={**AUTH, "X-Request-ID": "client-req-42"},
        )
        assert posted.status_code == 202, posted.text
        job_id = posted.json()["id"]
        refused = await c.get(
            f"/v1/jobs/job_x?api_key={KEY}", headers={**AUTH, "X-Request-ID": "no spaces, no"}
        )
        missing = await c.get("/v1/jobs/job_0000000000000000deadbeef", headers=AUTH)
        await served.pump_until(lambda: bool(hook.requests), what="the webhook")
        job = (await c.get(f"/v1/jobs/{job_id}", headers=AUTH)).json()
        # A line that names every configured secret and a signed result URL, some in its `extra` fields
        # (OTHER, a value of no known shape, is only hidden as a credential query parameter).
        logging.getLogger("tests.logs").warning(
            "upstream %s client %s webhook %s url %s",
            UPSTREAM, KEY, WEBHOOK, OSS_URL, extra={"detail": f"Bearer {KEY} {OSS_URL}"},
        )  # fmt: skip

    # The request id: the client's when it is safe, else a new one; echoed on every answer, errors included.
    assert posted.headers["x-request-id"] == "client-req-42"
    assert re.fullmatch(r"[0-9a-f]{16}", refused.headers["x-request-id"]), refused.headers
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert re.fullmatch(r"[0-9a-f]{16}", missing.headers["x-request-id"])

    lines: list[dict[str, Any]] = [json.loads(line) for line in outputs["json"].getvalue().splitlines()]
    text = outputs["text"].getvalue()
    assert len(text.splitlines()) >= len(lines) > 10
    # Every request the gateway served has one access line (embedded sandbox: its calls are not among them).
    access = [line for line in lines if line["logger"] == ACCESS_LOGGER]
    assert {(line["method"], line["path"].split("?")[0]) for line in access} >= {
        ("POST", "/v1/jobs"), ("GET", "/v1/jobs/job_x"), ("GET", f"/v1/jobs/{job_id}"),
    }  # fmt: skip
    assert all(line["path"].startswith("/v1/") and line["duration_ms"] >= 0 for line in access)
    assert all(line["client"].startswith("127.0.0.1:") for line in access)
    [post_access] = [line for line in access if line["method"] == "POST"]
    assert post_access["status"] == 202 and post_access["request_id"] == "client-req-42"
    # The POST's lines carry its id; the submit's name the job and its tenant.
    posts = [line for line in lines if line.get("request_id") == "client-req-42"]
    [queued] = [line for line in posts if line["logger"] == "app.jobs.service"]
    assert queued["job_id"] == job_id and queued["tenant"] == "alice"
    assert f"[request_id=client-req-42 job_id={job_id} tenant=alice]: job {job_id} queued" in text

    # Every line about the job, from the poller and the dispatcher, carries all its ids.
    ids = {
        "job_id": job_id,
        "tenant": "alice",
        "upstream_task_id": job["upstream"]["task_id"],
        "upstream_request_id": job["upstream"]["request_id"],
    }
    about = [line for line in lines if line.get("job_id") == job_id and "request_id" not in line]
    loggers = {line["logger"] for line in about}
    assert {"app.jobs.poller", "app.webhooks.dispatcher", "httpx"} <= loggers, loggers
    for line in about:
        if line["logger"] != "httpx" or "/tasks/" in line["message"] or "/files/" in line["message"]:
            assert {k: line.get(k) for k in ids} == ids, line
    [delivered] = [line for line in about if line["logger"] == "app.webhooks.dispatcher"]
    assert "HTTP 204" in delivered["message"] and delivered["delivery_id"] == hook.requests[0].webhook_id
    token = " ".join(f"{k}={v}" for k, v in ids.items())
    assert f"[{token}]: job {job_id} submitted as task {ids['upstream_task_id']}" in text
    assert f"[{token} delivery_id={delivered['delivery_id']}]: webhook delivery" in text

    # The result URL is logged without its query string; no secret in either format.
    copying = [line["message"] for line in about if "copying" in line["message"]]
    assert copying and all("?" not in message for message in copying)
    [mine] = [line for line in lines if line["logger"] == "tests.logs"]
    assert (
        mine["detail"]
        == "Bearer *** https://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/1d/ab/result.mp4"
    )
    for output in (outputs["json"].getvalue(), text):
        for secret in SECRETS:
            assert secret not in output
        for signed in ("Signature=", "OSSAccessKeyId=", "Expires=", "signature="):
            assert signed not in output
