"""The request head is bounded in size (`MAX_HEADER_BYTES` → 431) and in time (`HEADER_TIMEOUT_S` → 408,
or just closed when nothing came), on every server the gateway runs: raw sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.lifespan import open_gateway
from app.workers.process import health_server
from tests.conftest import Served, free_port, make_settings, serve
from tests.helpers import wait_for

#: The Postgres pass skips this module (tests/conftest.py ONE_DATABASE_REASONS).
pytestmark = pytest.mark.one_database(reason="http edge")

LIMIT = 64 * 1024  # the default MAX_HEADER_BYTES
WITHIN = 10.0  # a failure bound for the server to answer or close, not a timing claim


@contextlib.asynccontextmanager
async def connection(url: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def head_of(size: int, path: str = "/healthz") -> bytes:
    """A GET whose head (request line, headers, final blank line) is exactly `size` bytes."""
    start, end = f"GET {path} HTTP/1.1\r\nHost: gateway\r\nX-Pad: ".encode(), b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), WITHIN)
    return int(status_line.split()[1]), headers, body


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """All the server still sends, up to its closing the connection (EOF)."""
    return await asyncio.wait_for(reader.read(), WITHIN)


def assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> None:
    assert status == expected, body
    assert headers["content-type"] == "application/problem+json" and headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == expected and problem["code"] == code, problem


@pytest.fixture
async def quick(tmp_path: Path, database_url: str) -> AsyncIterator[Served]:
    """The gateway with tiny head and body timeouts (the size limit is the default)."""
    settings = make_settings(tmp_path, database_url, header_timeout_s=0.3, body_timeout_s=0.3)
    async with serve(settings) as served:
        yield served


async def test_a_100_kb_header_is_431_and_the_connection_closed(gateway: Served) -> None:
    async with connection(gateway.url) as (reader, writer):
        writer.write(head_of(100_000))
        await writer.drain()
        status, headers, body = await read_response(reader)
        assert_problem(status, headers, body, 431, "request_header_fields_too_large")
        assert await until_closed(reader) == b""
    assert (await gateway.client.get("/healthz")).status_code == 200  # the server is fine


async def test_a_head_at_the_limit_is_served_one_byte_more_is_431(gateway: Served) -> None:
    async with connection(gateway.url) as (reader, writer):
        for _ in range(2):  # and the connection is kept alive as usual
            writer.write(head_of(LIMIT))
            status, _, body = await read_response(reader)
            assert status == 200, body
        writer.write(head_of(LIMIT + 1))
        status, headers, body = await read_response(reader)
        assert_problem(status, headers, body, 431, "request_header_fields_too_large")
        assert await until_closed(reader) == b""


async def test_pipelined_requests_after_a_large_body_are_served(gateway: Served) -> None:
    """A head that starts inside the read that ends the previous request's body is counted from its start,
    not from the read's."""
    async with connection(gateway.url) as (reader, writer):
        body = b"x" * (3 * LIMIT)
        first = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nContent-Length: %d\r\n\r\n" % len(body)
        writer.write(first + body + head_of(200) + head_of(LIMIT))
        for _ in range(3):
            status, _, answer = await read_response(reader)
            assert status == 200, answer


async def test_an_endless_header_is_not_buffered_past_the_limit(gateway: Served) -> None:
    """A header that never ends is cut at the limit: the answer comes while the client is still sending."""
    async with connection(gateway.url) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Endless: ")
        answer = asyncio.create_task(read_response(reader))
        sent = 0
        while not answer.done():  # the server answers once it has read the limit's worth
            assert sent < 4 * LIMIT, "no answer while the header went on"
            writer.write(b"a" * 4096)
            sent += 4096
            await writer.drain()
            await asyncio.wait({answer}, timeout=0.01)
        status, headers, body = answer.result()
        assert_problem(status, headers, body, 431, "request_header_fields_too_large")


async def test_a_trickled_head_is_cut_at_the_header_timeout(quick: Served) -> None:
    async with connection(quick.url) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")

        async def trickle() -> None:  # a byte now and then: each one arrives, none restarts the clock
            with contextlib.suppress(OSError):
                while True:
                    writer.write(b"X")
                    await writer.drain()
                    await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        try:
            status, headers, body = await read_response(reader)
            assert_problem(status, headers, body, 408, "request_timeout")
            assert await until_closed(reader) == b""
        finally:
            trickling.cancel()


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(quick: Served) -> None:
    async with connection(quick.url) as (reader, _):
        assert await until_closed(reader) == b""  # closed without an answer: nothing was asked


async def test_keep_alive_requests_each_get_the_header_timeout_afresh(quick: Served) -> None:
    async with connection(quick.url) as (reader, writer):
        writer.write(head_of(200))
        assert (await read_response(reader))[0] == 200
        # Idle between requests for longer than the head timeout (keep-alive allows 5 s): the clock only
        # starts again with the next request's first byte.
        await asyncio.sleep(0.5)
        writer.write(head_of(200))
        assert (await read_response(reader))[0] == 200
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")  # never finished
        status, headers, body = await read_response(reader)
        assert_problem(status, headers, body, 408, "request_timeout")
        assert await until_closed(reader) == b""


async def test_a_body_that_stops_arriving_is_408_and_the_connection_closed(quick: Served) -> None:
    async with connection(quick.url) as (reader, writer):
        writer.write(
            b"POST /v1/jobs HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"prompt": "a cat"'
        )  # ... and the rest never comes
        status, headers, body = await read_response(reader)
        assert_problem(status, headers, body, 408, "request_timeout")
        assert await until_closed(reader) == b""
    assert (await quick.client.get("/v1/jobs")).status_code == 200  # nothing else is held up


async def test_the_worker_health_port_has_the_same_bounds(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, header_timeout_s=0.3)
    port = free_port()
    async with open_gateway(settings) as gateway:
        server = health_server(gateway, settings, host="127.0.0.1", port=port)
        serving = asyncio.create_task(server.serve())
        try:
            await wait_for(lambda: _started(server.started, serving), what="the health port")
            url = f"http://127.0.0.1:{port}"
            async with connection(url) as (reader, writer):
                writer.write(head_of(LIMIT))
                assert (await read_response(reader))[0] == 200
                writer.write(head_of(100_000))
                status, headers, body = await read_response(reader)
                assert_problem(status, headers, body, 431, "request_header_fields_too_large")
            async with connection(url) as (reader, _):
                assert await until_closed(reader) == b""
        finally:
            server.should_exit = True
            await serving


async def _started(started: bool, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return started
