"""An image server for tests: a raw HTTP/1.1 server on 127.0.0.1 whose routes answer as the test scripts
them (an image, a redirect, an error, a body that never ends, a server that stalls), recording each
request and counting connections. Raw asyncio rather than an ASGI app, so a test controls every byte."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus


@dataclass(frozen=True)
class Body:
    data: bytes
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Redirect:
    location: str
    status: int = 302


@dataclass(frozen=True)
class Endless:
    """A chunked 200 that never ends (up to `limit` bytes, so a broken client cannot spin forever)."""

    chunk: bytes = b"\x89PNG" + b"\0" * (64 * 1024 - 4)
    limit: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class Stall:
    """Say nothing (`head=None`), or send `head` (status line and headers, maybe a few body bytes) and
    then nothing more, until the server shuts down."""

    head: bytes | None = None


Route = Body | Redirect | Endless | Stall


@dataclass
class Seen:
    path: str
    headers: dict[str, str]  # lower-case names
    peer: str

    @property
    def host(self) -> str:
        return self.headers.get("host", "")


@dataclass
class ImageServer:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    #: Connections that have ended (the client closed them, or the route was done).
    closed: int = 0
    port: int = 0
    scheme: str = "http"
    body_bytes_sent: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            while True:  # keep-alive: serve requests until the client closes
                try:
                    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                path = head[0].split(" ")[1]
                headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in head[1:] if line)}
                self.requests.append(Seen(path, headers, writer.get_extra_info("peername")[0]))
                route = self.routes.get(path, Body(b"not found", status=404))
                if not await self._answer(route, writer):
                    return
        except ConnectionError:
            return
        finally:
            writer.close()
            self.closed += 1
            self._handlers.discard(task)

    async def _answer(self, route: Route, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is done."""
        if isinstance(route, Body):
            lines = [f"HTTP/1.1 {route.status} {HTTPStatus(route.status).phrase}"]
            lines += [f"{k}: {v}" for k, v in route.headers] + [f"Content-Length: {len(route.data)}"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + route.data)
            self.body_bytes_sent += len(route.data)
        elif isinstance(route, Redirect):
            status = f"{route.status} {HTTPStatus(route.status).phrase}"
            writer.write(
                f"HTTP/1.1 {status}\r\nLocation: {route.location}\r\nContent-Length: 0\r\n\r\n".encode()
            )
        elif isinstance(route, Endless):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n")
            sent = 0
            while sent < route.limit and not writer.is_closing():
                writer.write(b"%x\r\n%s\r\n" % (len(route.chunk), route.chunk))
                await writer.drain()  # raises once the client has gone
                sent += len(route.chunk)
                self.body_bytes_sent += len(route.chunk)
            return False
        else:
            if route.head is not None:
                writer.write(route.head)
                await writer.drain()
            await self._release.wait()
            return False
        await writer.drain()
        return True


@contextlib.asynccontextmanager
async def image_server(
    routes: Mapping[str, Route] | None = None, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[ImageServer]:
    server = ImageServer(routes=dict(routes or {}))
    server.scheme = "https" if tls else "http"
    listener = await asyncio.start_server(server._connection, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server._release.set()
        listener.close()
        for task in list(server._handlers):
            task.cancel()
        await asyncio.gather(*server._handlers, return_exceptions=True)
        await listener.wait_closed()
