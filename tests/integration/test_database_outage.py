"""A database that goes away: answered 503 problem+json with Retry-After, never a 500 or a dropped
connection, and nothing accepted that could be lost.

- Postgres unreachable (a TCP proxy between the gateway and the server, cut and restored): 503 while it
  is cut, /readyz says so, and everything works again once restored, without restarting the gateway.
- The SQLite file deleted or replaced under a running gateway: /readyz names it, every write is refused
  (before, the gateway went on accepting jobs into an orphaned file that a restart never sees).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.db.availability import DatabaseFileLost, is_unavailable
from tests.conftest import TEST_DATABASE_URL, Served, make_settings, serve
from tests.tcpproxy import TcpProxy, tcp_proxy

BODY = {"prompt": "a cat", "duration": 2, "size": "1280*720"}


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "database_unavailable"
    assert int(response.headers["retry-after"]) > 0


async def loop_turn_error(served: Served) -> BaseException:
    """What a turn of the job loop fails with (it must fail: there is no database to claim from)."""
    try:
        await served.gateway.poller.run_once()
    except Exception as error:
        return error
    raise AssertionError("the job loop ran without a database")


# --- Postgres: an outage ------------------------------------------------------------------------------


@pytest.fixture
async def proxied(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Served, TcpProxy]]:
    if not TEST_DATABASE_URL:
        pytest.skip("a network outage needs a database server (the Postgres pass)")
    url = make_url(database_url)
    assert url.host is not None and url.port is not None
    async with tcp_proxy(url.host, url.port) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        async with serve(make_settings(tmp_path, through)) as served:
            yield served, proxy


async def test_postgres_outage_is_503_with_retry_after_and_recovers_without_restart(
    proxied: tuple[Served, TcpProxy], png_uri: str
) -> None:
    served, proxy = proxied
    before = await served.submit(png_uri)
    assert (await served.client.get("/readyz")).status_code == 200

    await proxy.cut()
    for _ in range(2):  # the pooled connections die first, then new ones are refused
        assert_unavailable(await served.client.get(f"/v1/jobs/{before}"))
        assert_unavailable(await served.client.post("/v1/jobs", json={**BODY, "reference_image": png_uri}))
    ready = await served.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unavailable")
    assert is_unavailable(await loop_turn_error(served))  # the loops' run() logs it and waits

    await proxy.restore()
    assert (await served.job(before))["status"] == "queued"
    after = await served.submit(png_uri)
    assert (await served.client.get("/readyz")).status_code == 200
    listed = {job["id"] for job in (await served.client.get("/v1/jobs")).json()["data"]}
    assert {before, after} <= listed


# --- SQLite: the file deleted or replaced -------------------------------------------------------------


@pytest.fixture
async def on_sqlite(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Served, Path]]:
    if TEST_DATABASE_URL:
        pytest.skip("the SQLite file guard (the Postgres pass has no file)")
    database = make_url(database_url).database
    assert database is not None
    async with serve(make_settings(tmp_path, database_url)) as served:
        yield served, Path(database)


async def assert_refused(served: Served, path: Path, png_uri: str) -> None:
    ready = await served.client.get("/readyz")
    assert ready.status_code == 503
    assert str(path) in ready.json()["checks"]["database"]
    assert_unavailable(await served.client.post("/v1/jobs", json={**BODY, "reference_image": png_uri}))
    assert isinstance(await loop_turn_error(served), DatabaseFileLost)  # the loops write nothing either


async def test_a_deleted_sqlite_file_is_refused_and_nothing_is_accepted(
    on_sqlite: tuple[Served, Path], png_uri: str
) -> None:
    served, path = on_sqlite
    await served.submit(png_uri)
    path.unlink()
    await assert_refused(served, path, png_uri)
    assert not path.exists(), "no new empty database was created in its place"


async def test_a_replaced_sqlite_file_is_refused_and_nothing_is_accepted(
    on_sqlite: tuple[Served, Path], png_uri: str
) -> None:
    served, path = on_sqlite
    await served.submit(png_uri)
    copy = path.with_suffix(".copy")
    shutil.copy(path, copy)
    os.replace(copy, path)  # e.g. a backup restored over it: another file at the same path
    await assert_refused(served, path, png_uri)
