"""Several emulated accounts: one per key, each with its own tasks, uploads, limits and figures."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.sandbox.config import SandboxConfig
from app.sandbox.server import SandboxServer
from app.sandbox.settings import SandboxSettings
from app.sandbox.store import TaskStore
from tests.helpers import image_bytes
from tests.sandbox.sandbox_helpers import (
    ASYNC,
    I2V_PATH,
    assert_error,
    body_for,
    client_for,
    create,
    task,
    wait_status,
)

KEYS = ("sk-sandbox", "sk-sandbox-2")


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(client.base_url.join("/_sandbox/stats"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_account_count_derives_the_keys(tmp_path: Path) -> None:
    def keys(**values: Any) -> tuple[str, ...]:
        settings = SandboxSettings(_env_file=None, **values)
        return SandboxConfig.from_settings(settings, default_state_path=tmp_path / "s.db").api_keys

    assert keys() == ("sk-sandbox",)
    assert keys(account_count=3) == ("sk-sandbox", "sk-sandbox-2", "sk-sandbox-3")
    assert keys(account_count=2, api_key="sk-mine") == ("sk-mine", "sk-mine-2")


async def test_accounts_are_isolated(make_config: Callable[..., SandboxConfig]) -> None:
    config = make_config(api_keys=KEYS, pending_s=30)
    async with (
        SandboxServer(config) as server,
        client_for(server, KEYS[0]) as first,
        client_for(server, KEYS[1]) as second,
    ):
        task_id = await create(first)
        # Another account's task is UNKNOWN to it, cannot be canceled by it, and is not in its list.
        assert (await task(second, task_id))["output"]["task_status"] == "UNKNOWN"
        assert_error(await second.post(f"/tasks/{task_id}/cancel"), 400, "UnsupportedOperation")
        assert (await second.get("/tasks")).json()["total"] == 0
        rows = (await first.get("/tasks")).json()["data"]
        assert [row["task_id"] for row in rows] == [task_id]
        assert (await task(first, task_id))["output"]["task_status"] == "PENDING"
        own = await create(second)
        second_rows = (await second.get("/tasks")).json()["data"]
        assert [row["task_id"] for row in second_rows] == [own]
        assert second_rows[0]["caller_uid"] != rows[0]["caller_uid"]
        assert second_rows[0]["api_key_id"] != rows[0]["api_key_id"]

        # Uploads: each account has its own directory; another account's upload does not resolve.
        params = {"action": "getPolicy", "model": "wan2.2-i2v-flash"}
        dirs = [
            (await c.get("/uploads", params=params)).json()["data"]["upload_dir"] for c in (first, second)
        ]
        assert dirs[0].split("/")[1] != dirs[1].split("/")[1]
        server.put_upload(f"{dirs[0]}/cat.png", image_bytes())
        body = body_for("wan2.2-i2v-flash", image=f"oss://{dirs[0]}/cat.png")
        headers = {**ASYNC, "X-DashScope-OssResourceResolve": "enable"}
        assert (await first.post(I2V_PATH, headers=headers, json=body)).status_code == 200
        assert_error(
            await second.post(I2V_PATH, headers=headers, json=body), 400, "InvalidParameter.DataInspection"
        )

        # A key of no account is refused; a revoked account's key too, until it is restored.
        async with client_for(server, "sk-sandbox-3") as stranger:
            assert_error(await stranger.get("/tasks"), 401, "InvalidApiKey", "Invalid API-key provided.")
        accounts = first.base_url.join("/_sandbox/accounts")
        assert_error(
            await first.post(accounts, json={"account": "3", "revoked": True}), 400, "InvalidParameter"
        )
        revoked = await first.post(accounts, json={"account": "2", "revoked": True})
        assert [row["revoked"] for row in revoked.json()["accounts"]] == [False, True]
        assert_error(await second.get("/tasks"), 401, "InvalidApiKey")
        assert (await first.get("/tasks")).status_code == 200
        # The control API still takes the revoked key, so a test can restore the account with it.
        assert (await second.post(accounts, json={"account": "2", "revoked": False})).status_code == 200
        assert (await second.get("/tasks")).json()["total"] == 1


async def test_accounts_have_their_own_limits(make_config: Callable[..., SandboxConfig]) -> None:
    config = make_config(
        api_keys=KEYS,
        enforce_limits=True,
        submit_rps={"wan2.2": 2},
        max_running={"wan2.2": 1},
        task_api_qps=1000,
        pending_s=0.05,
        running_s=1.0,  # room for a loaded machine between the creates and the checks
    )
    async with (
        SandboxServer(config) as server,
        client_for(server, KEYS[0]) as first,
        client_for(server, KEYS[1]) as second,
    ):
        running, queued = await create(first), await create(first)
        # The first account's create rate is spent; the second's is not.
        assert_error(
            await first.post(I2V_PATH, headers=ASYNC, json=body_for("wan2.2-i2v-flash")),
            429,
            "Throttling.RateQuota",
        )
        other = await create(second)
        # The first account's only slot is busy: its second task waits, the other account's does not.
        await wait_status(second, other, "RUNNING")
        assert (await task(first, queued))["output"]["task_status"] == "PENDING"
        assert (await task(first, running))["output"]["task_status"] == "RUNNING"

        busy = await _stats(first)
        assert busy["created_total"] == 3
        one, two = busy["accounts"]["1"], busy["accounts"]["2"]
        assert one["created"] == {"wan2.2-i2v-flash": 2} and two["created_total"] == 1
        assert one["throttled"] == {"create": 1, "task_api": 0} and two["throttled"]["create"] == 0
        assert one["families"]["wan2.2"]["running"] == 1 and two["families"]["wan2.2"]["running"] == 1

        await wait_status(first, queued, "SUCCEEDED")
        await wait_status(second, other, "SUCCEEDED")
        done = await _stats(first)
        slots = {name: figures["families"]["wan2.2"] for name, figures in done["accounts"].items()}
        assert slots["1"]["limit"] == 1 and slots["1"]["peak"] == 1 and slots["2"]["peak"] == 1
        assert slots["1"]["running"] == 0
        # Two 1 s runs one after the other in the first account's one slot, one in the second's.
        assert slots["1"]["busy_s"] == 2.0 and slots["2"]["busy_s"] == 1.0
        assert slots["1"]["busy_s"] <= done["window_s"]

        # A reset starts a new window: no task since, nothing created or throttled.
        reset = (await first.delete(first.base_url.join("/_sandbox/stats"))).json()
        assert reset["accounts"]["1"]["created_total"] == 0 and reset["accounts"]["1"]["families"] == {}


async def test_task_api_rate_is_per_account(make_config: Callable[..., SandboxConfig]) -> None:
    config = make_config(api_keys=KEYS, enforce_limits=True, task_api_qps=2)
    async with (
        SandboxServer(config) as server,
        client_for(server, KEYS[0]) as first,
        client_for(server, KEYS[1]) as second,
    ):
        assert [(await first.get("/tasks/x")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await second.get("/tasks/x")).status_code == 200
        figures = (await _stats(second))["accounts"]
        assert figures["1"]["throttled"]["task_api"] == 1 and figures["2"]["throttled"]["task_api"] == 0
        assert server.stats.account_throttled == {("1", "task_api"): 1}


async def test_state_file_of_an_older_sandbox_gains_accounts(tmp_path: Path) -> None:
    """Its tasks (no `account` column) belong to account 1, the only one there was."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE tasks (task_id TEXT PRIMARY KEY, model TEXT NOT NULL, family TEXT NOT NULL,"
            " request_id TEXT NOT NULL, created_at REAL NOT NULL, start_at REAL NOT NULL, end_at REAL,"
            " canceled_at REAL, outcome TEXT NOT NULL, detail TEXT NOT NULL);"
            "CREATE INDEX tasks_family_end ON tasks (family, end_at);"
        )
        detail = {"endpoint": "video-generation", "resolution": "480P", "duration": 5, "width": 832}
        detail |= {"height": 480, "has_audio": False, "prompt": None, "prompt_extend": True}
        conn.execute(
            "INSERT INTO tasks VALUES ('t1', 'wan2.2-i2v-flash', 'wan2.2', 'r', 1.0, 2.0, 3.0, NULL,"
            " 'SUCCEEDED', ?)",
            (json.dumps(detail),),
        )
    store = TaskStore(path, retention_s=86400)
    try:
        record = await store.get("t1", account="1")
        assert record is not None and record.account == "1" and record.detail.width == 832
        assert await store.get("t1", account="2") is None
        assert await store.slots_since(0.0) == [("1", "wan2.2", (2.0, 3.0))]
    finally:
        store.close()
