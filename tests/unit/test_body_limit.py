"""BodySizeLimit on its own, with a scripted ASGI server: it reads nothing past the cap, and the client gets
exactly one answer — the 413 — whatever the app makes of the failed read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.api.body_limit import BodySizeLimit

CAP = 25
IDLE_S = 30.0


def http_scope(content_length: int | None = None) -> Scope:
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {"type": "http", "method": "POST", "path": "/v1/jobs", "headers": headers}


class Server:
    """Feeds the body in chunks of 10 bytes and records what is read and sent."""

    def __init__(self, chunks: int = 10) -> None:
        self.chunks = chunks
        self.reads = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.reads += 1
        if self.reads > self.chunks:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b"x" * 10, "more_body": self.reads < self.chunks}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def statuses(self) -> list[int]:
        return [m["status"] for m in self.sent if m["type"] == "http.response.start"]

    def body(self) -> Any:
        return json.loads(
            b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        )


async def read_all(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body


async def answers_its_own_error(scope: Scope, receive: Receive, send: Send) -> None:
    """Like FastAPI: a body whose read fails becomes the app's own 400."""
    try:
        await read_all(receive)
    except Exception:
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"There was an error parsing the body"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def test_a_streamed_body_is_read_up_to_the_cap_and_answered_413_alone() -> None:
    server = Server()
    await BodySizeLimit(answers_its_own_error, max_bytes=CAP, idle_timeout_s=IDLE_S)(
        http_scope(), server.receive, server.send
    )
    assert server.reads == 3  # 30 bytes > 25: not one chunk more
    assert server.statuses() == [413]  # the app's 400 never went out
    problem = server.body()
    assert problem["code"] == "request_too_large" and problem["limit"] == CAP
    headers = dict(server.sent[0]["headers"])
    assert headers[b"content-type"] == b"application/problem+json"


async def test_an_app_that_lets_the_error_escape_or_reads_again_still_gets_a_413() -> None:
    async def stubborn(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(5):
            try:
                await receive()
            except Exception:  # noqa: S112 - the point: it keeps reading
                continue
        await read_all(receive)  # raises again, and escapes

    server = Server()
    await BodySizeLimit(stubborn, max_bytes=CAP, idle_timeout_s=IDLE_S)(
        http_scope(), server.receive, server.send
    )
    assert server.reads == 3 and server.statuses() == [413]


async def test_a_declared_length_over_the_cap_never_reaches_the_app() -> None:
    async def must_not_run(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app ran")

    server = Server()
    await BodySizeLimit(must_not_run, max_bytes=CAP, idle_timeout_s=IDLE_S)(
        http_scope(CAP + 1), server.receive, server.send
    )
    assert server.reads == 0 and server.statuses() == [413]


async def test_a_body_within_the_cap_passes_untouched() -> None:
    server = Server(chunks=2)
    await BodySizeLimit(answers_its_own_error, max_bytes=CAP, idle_timeout_s=IDLE_S)(
        http_scope(20), server.receive, server.send
    )
    assert server.reads == 2 and server.statuses() == [200]


async def test_an_answer_already_begun_is_not_followed_by_a_second_one() -> None:
    async def answers_then_reads(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await read_all(receive)
        await send({"type": "http.response.body", "body": b"done"})

    server = Server()
    with pytest.raises(RuntimeError, match="after the answer began"):
        await BodySizeLimit(answers_then_reads, max_bytes=CAP, idle_timeout_s=IDLE_S)(
            http_scope(), server.receive, server.send
        )
    assert server.statuses() == [200] and len(server.sent) == 1  # the server drops the connection


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    server = Server()
    await BodySizeLimit(app, max_bytes=CAP, idle_timeout_s=IDLE_S)(
        {"type": "lifespan"}, server.receive, server.send
    )
    assert seen == ["lifespan"]


class StallingServer(Server):
    """Sends `chunks` pieces of a longer body, then nothing: the client stopped sending."""

    async def receive(self) -> Message:
        self.reads += 1
        if self.reads > self.chunks:
            await asyncio.Event().wait()  # never comes
        return {"type": "http.request", "body": b"x" * 10, "more_body": True}


async def test_a_body_that_stops_arriving_is_a_408_and_the_connection_closes() -> None:
    server = StallingServer(chunks=1)
    limit = BodySizeLimit(answers_its_own_error, max_bytes=10_000, idle_timeout_s=0.05)
    await limit(http_scope(1000), server.receive, server.send)
    assert server.statuses() == [408]  # not the app's own 400 about a failed read
    start = next(m for m in server.sent if m["type"] == "http.response.start")
    assert (b"connection", b"close") in start["headers"]
    assert server.body()["code"] == "request_timeout"


async def test_waiting_for_a_disconnect_after_the_body_is_not_timed() -> None:
    """Streaming answers wait on `receive` for the client to leave: that wait is not a stalled body."""
    server = Server(chunks=1)
    disconnect = asyncio.Event()
    seen: list[str] = []

    async def receive() -> Message:
        if server.reads >= 1:
            await disconnect.wait()
        return await server.receive()

    async def streams_until_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
        await read_all(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        seen.append((await receive())["type"])  # passes the idle timeout several times over
        await send({"type": "http.response.body", "body": b"{}"})

    limit = BodySizeLimit(streams_until_disconnect, max_bytes=CAP, idle_timeout_s=0.01)
    app = asyncio.create_task(limit(http_scope(10), receive, server.send))
    await asyncio.sleep(0.05)  # the app is waiting for the disconnect meanwhile (not waiting for work)
    disconnect.set()
    await app
    assert seen == ["http.disconnect"] and server.statuses() == [200]
