"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that verifies every request with the
`standardwebhooks` package and answers as the test scripts it (fail N times, 410, redirect, go down, or
hold every request unanswered until the test releases it: a tarpit)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.helpers import wait_for

#: Given the 1-based number of the request, the response to send.
Behaviour = Callable[[int], Response]


def ok(_: int) -> Response:
    return Response(status_code=204)


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    at: float
    verified: dict[str, Any] | None  # the payload, when the signature verified with the receiver's secret
    status: int  # what we answered

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def type(self) -> str:
        return str(json.loads(self.body)["type"])


@dataclass
class Receiver:
    secret: str
    behaviour: Behaviour = ok
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    #: Tarpit (`hold()`): requests waiting unanswered now, and the most that ever waited at once.
    held: int = 0
    most_held: int = 0
    _gate: asyncio.Event | None = None
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def delivered(self) -> list[Received]:
        """Requests that verified and that we acknowledged with a 2xx."""
        return [r for r in self.requests if r.verified is not None and 200 <= r.status < 300]

    def hold(self) -> None:
        """Be a tarpit: from now on every request waits, unanswered, until `release()`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Answer the held requests (and any later ones) as `behaviour` says."""
        if self._gate is not None:
            self._gate.set()

    async def _hook(self, request: Request) -> Response:
        body = (await request.body()).decode()
        if self._gate is not None and not self._gate.is_set():
            self.held += 1
            self.most_held = max(self.most_held, self.held)
            try:
                await self._gate.wait()
            finally:
                self.held -= 1
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            verified = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            verified = None
        response = self.behaviour(len(self.requests) + 1)
        self.requests.append(Received(headers, body, time.monotonic(), verified, response.status_code))
        return response

    async def _elsewhere(self, request: Request) -> Response:
        self.requests.append(Received({}, "", time.monotonic(), None, 200))
        return Response(status_code=200)

    async def start(self) -> None:
        """Listen (again) on `port`, or on a free one the first time."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        routes = [
            Route("/hook", self._hook, methods=["POST"]),
            Route("/elsewhere", self._elsewhere, methods=["POST"]),
        ]
        app = Starlette(routes=routes)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        server, task = self._server, asyncio.create_task(self._server.serve(sockets=[sock]))
        self._task = task

        async def started() -> bool:
            if task.done():
                task.result()  # raise the startup error
            return server.started

        await wait_for(started, within=10, what="the webhook receiver to listen")

    async def stop(self) -> None:
        """Stop listening: connections are refused until `start()` again."""
        self.release()  # the server waits for its requests to be answered
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None


@contextlib.asynccontextmanager
async def receiver(secret: str, behaviour: Behaviour = ok) -> AsyncIterator[Receiver]:
    running = Receiver(secret=secret, behaviour=behaviour)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
