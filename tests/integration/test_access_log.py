"""The gateway's access log: one line per request, with or without the embedded sandbox, and never a key,
whichever formatter writes it (the default one, or uvicorn's access formatter, which builds its line from
the record's arguments)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter

from app.serving import ACCESS_LOGGER
from tests.conftest import make_settings, serve
from tests.helpers import data_uri

#: Client keys of no recognisable shape: only the exact-secret rule and the query rule can catch them.
KEY = "Q7rT0pLm9XcV2bN8kJ4hG6fD1sA3zW5y"
OTHER = "unconfigured-and-unknown-shape-value"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("sandbox", [True, False], ids=["embedded-sandbox", "no-sandbox"])
async def test_every_request_has_an_access_line_and_no_key_in_it(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture, sandbox: bool
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    upstream = {} if sandbox else {"dashscope_api_key": SecretStr("sk-" + "0" * 32)}
    settings = make_settings(
        tmp_path,
        database_url,
        dashscope_sandbox=sandbox,
        dashscope_base_url="http://127.0.0.1:9/api/v1",  # never called without the sandbox
        gateway_api_keys=SecretStr(f"alice:{KEY}"),
        **upstream,
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
        if sandbox:  # the gateway's calls to its sandbox are not the gateway's requests
            served.headers = AUTH
            job_id = await served.submit(data_uri(640, 360))
            await served.drive(job_id, "running", "succeeded")
    assert [a.status_code for a in answers] == [200, 200, 422, 422, 404]
    for answer in answers:
        assert KEY not in answer.text and OTHER not in answer.text
    lines = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    paths = [line.getMessage().split('"')[1].split()[1] for line in lines]
    expected = ["/healthz", "/v1/jobs", "/v1/jobs/job_x?api_key=***", "/v1/jobs?token=***", "/nowhere"]
    assert paths[:5] == expected
    if sandbox:
        assert paths[5] == "/v1/jobs" and {p.split("?")[0] for p in paths[6:]} == {f"/v1/jobs/{job_id}"}
    else:
        assert len(paths) == 5
    uvicorns = AccessFormatter(LOGGING_CONFIG["formatters"]["access"]["fmt"], use_colors=False)
    for text in [caplog.text, *(uvicorns.format(line) for line in lines)]:
        assert KEY not in text and OTHER not in text
