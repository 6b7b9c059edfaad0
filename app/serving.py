"""How the gateway serves HTTP: one uvicorn construction for `wan-gateway serve`, a worker's health port and
the test suite, with a bounded request head and an access log that is the server's own.

- **Request head** (request line + header fields): at most `MAX_HEADER_BYTES`, received within
  `HEADER_TIMEOUT_S`. uvicorn's httptools protocol has neither bound (a 20 MB header was read whole, and a
  socket that never finished its head was held forever), and h11's `h11_max_incomplete_event_size`
  answers 400. `BoundedHttpProtocol` (a small subclass of uvicorn's httptools protocol) feeds the parser
  at most the head's remaining budget, so an unfinished head is never buffered beyond the limit, and
  answers `431` problem+json once the budget is spent without the head being complete. The head timer
  starts when the connection opens and, on a keep-alive connection, with the first byte of the next
  request (the wait for that byte is uvicorn's `timeout_keep_alive`); it stops when the head is complete.
  When it fires, a connection that sent part of a head gets `408`, one that sent nothing is just closed.
  After either answer the server stops reading requests, half-closes, and drops what the client still
  sends for up to `_LINGER_S` before closing, so the client reads the answer rather than a reset.
- **Request ids and the access log** (`RequestLog`, a pure ASGI middleware around every gateway server's
  app, outside the error handlers so that a 500 gets its id too): the request's id is the client's
  `X-Request-ID` when it is safe (`logcontext.request_id_from`: ≤ 128 characters of `A-Za-z0-9._:+=@/-`),
  else a new one; it is echoed as `X-Request-ID` on every answer and bound in `logcontext` for every line
  written while serving the request. When the answer is done, one line on the `app.access` logger
  (`ACCESS_LOGGER`): client, method, path with its query (redacted as every line is), status and
  duration, also as `extra` fields for the JSON format. The gateway's lines are thus its own, whichever
  servers share the process: uvicorn's protocols log to the process-wide `uvicorn.access` logger, whose
  `Config(access_log=False)` empties that logger for everyone (the embedded sandbox's server did, and the
  gateway's access log went silent); here each server names its uvicorn access logger (or none:
  `gateway_config` uses none, `RequestLog` writes the gateway's), and nothing turns off another server's.
  The standalone sandbox logs on `uvicorn.access.sandbox` (`SANDBOX_ACCESS_LOGGER`).
- **Embedded servers** (the embedded sandbox, a worker's health port, the test suite's gateways) are
  started and stopped by their host process: `EmbeddedServer` is ready when `ready` is set, stops at once on
  `request_exit()` and shuts down without uvicorn's fixed 0.1 s pause and 0.1 s polling steps (started and
  stopped per test, those pauses were most of a test's time). `wan-gateway serve` runs uvicorn's own server.
- **Logging configuration** stays with the process (`startup.configure_logging`, pytest): `log_config=None`
  and no `log_level`, so uvicorn changes no logger, and its lines pass the redactor like any other
  (`logsafety`).

The subclass relies on uvicorn's httptools protocol internals (its parser callbacks, `data_received`,
`cycle`, `server_state.default_headers`); pyproject.toml pins the uvicorn range it was tested with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import uvicorn
from uvicorn._types import ASGIApplication
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app import logcontext
from app.errors import problem

log = logging.getLogger(__name__)

#: How long a refused connection keeps reading (and dropping) what the client still sends before closing.
_LINGER_S = 2.0
#: The gateway's access lines (written by `RequestLog`).
ACCESS_LOGGER = "app.access"
#: uvicorn's own access logger: `wan-gateway sandbox` (standalone) logs under a child of it, by name.
UVICORN_ACCESS_LOGGER = "uvicorn.access"
SANDBOX_ACCESS_LOGGER = "uvicorn.access.sandbox"
access_log = logging.getLogger(ACCESS_LOGGER)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestLog:
    """Pure ASGI middleware: the request's id (taken or made, echoed, bound for its log lines) and its
    access line. Cheap: a header scan, a context variable, a timer and one log record per request."""

    def __init__(self, app: ASGIApp, *, access_lines: bool = True) -> None:
        self.app = app
        self.access_lines = access_lines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
                break
        request_id = logcontext.request_id_from(given)
        echoed = (b"x-request-id", request_id.encode("ascii"))
        status = 500  # what uvicorn answers when the app fails before starting a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        started = time.perf_counter()
        with logcontext.bind(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if self.access_lines and access_log.isEnabledFor(logging.INFO):
                    self._log(scope, status, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _log(scope: Scope, status: int, duration_ms: float) -> None:
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        query = scope.get("query_string", b"")
        path = scope.get("path", "")
        target = f"{path}?{query.decode('latin-1')}" if query else path
        method = scope.get("method", "-")
        duration = round(duration_ms, 1)
        access_log.info(
            '%s - "%s %s HTTP/%s" %d %.1fms',
            peer,
            method,
            target,
            scope.get("http_version", "1.1"),
            status,
            duration,
            extra={
                "method": method,
                "path": target,
                "status": status,
                "duration_ms": duration,
                "client": peer,
            },
        )


class HeadSettings(Protocol):
    """The settings a server's head bounds come from (the gateway's `Settings` are one): this module
    serves the sandbox too, which has no gateway settings, so it does not import them."""

    @property
    def max_header_bytes(self) -> int: ...

    @property
    def header_timeout_s(self) -> float: ...


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on a request's head (request line + header fields). The defaults are those of the gateway's
    MAX_HEADER_BYTES and HEADER_TIMEOUT_S, for a server built without settings (the sandbox, or
    `uvicorn --http app.serving:BoundedHttpProtocol`)."""

    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: HeadSettings) -> HttpLimits:
        return cls(max_header_bytes=settings.max_header_bytes, header_timeout_s=settings.header_timeout_s)


class ServingConfig(uvicorn.Config):
    """A uvicorn Config served by `BoundedHttpProtocol`, carrying its limits and its access logger's name
    (None: no access log; never `access_log=False`, which silences the shared logger for every server)."""

    def __init__(
        self,
        app: ASGIApplication | Callable[..., Any],
        *,
        limits: HttpLimits | None = None,
        access_logger: str | None = UVICORN_ACCESS_LOGGER,
        **kwargs: Any,
    ) -> None:
        self.limits = limits or HttpLimits()
        self.access_logger = access_logger
        # No WebSocket routes anywhere: an Upgrade request is served as plain HTTP.
        super().__init__(app, http=BoundedHttpProtocol, ws="none", **kwargs)


def gateway_config(
    app: ASGIApplication | Callable[..., Any],
    settings: HeadSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    access_log: bool = True,
) -> ServingConfig:
    """The Config every HTTP server of the gateway runs with (API, worker health port, tests): its app
    behind `RequestLog` (request ids; the access line unless `access_log` is off), uvicorn's own access
    log off."""
    return ServingConfig(
        RequestLog(app, access_lines=access_log),  # type: ignore[arg-type]
        limits=HttpLimits.from_settings(settings),
        access_logger=None,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,  # the process configured logging already
    )


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server inside a host process that starts and stops it: no signal handlers of its own (the
    host's stop it, through `request_exit()`), `ready` set once it listens, and a shutdown that waits only
    for what is in flight instead of uvicorn's fixed pause and polling."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._exit = asyncio.Event()  # before uvicorn's __init__, which sets should_exit
        super().__init__(config)
        self.ready = asyncio.Event()

    @property
    def should_exit(self) -> bool:
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        # Setting it (uvicorn does on a failed start-up, hosts do to stop) wakes the main loop at once.
        if value:
            self._exit.set()
        else:
            self._exit.clear()

    def request_exit(self) -> None:
        """Stop serving now (the main loop wakes at once, not at uvicorn's next 0.1 s tick)."""
        self.should_exit = True

    async def main_loop(self) -> None:
        # A tick per second still refreshes the Date header (on_tick does it when the counter is a multiple
        # of 10, as uvicorn's own loop does every tenth 0.1 s tick).
        counter = 0
        while not await self.on_tick(counter):
            counter += 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), timeout=1.0)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # not after a failed lifespan start-up (uvicorn then returns with should_exit)
            self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's shutdown without its fixed 0.1 s pause and 0.1 s polling steps: close idle
        # connections, let the requests in flight finish (busy connections close after their response),
        # then the lifespan.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        in_flight = set(self.server_state.tasks)
        if in_flight:
            _, late = await asyncio.wait(in_flight, timeout=self.config.timeout_graceful_shutdown)
            for task in late:
                task.cancel(msg="shutdown: graceful timeout exceeded")
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # a Ctrl-C or SIGTERM belongs to the host process, which stops this server in its own order


def run(config: ServingConfig) -> None:
    """Serve until SIGINT/SIGTERM, as `uvicorn.run` does with one process (uvloop when installed)."""
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises SIGINT after a clean shutdown
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head (size and time) and a per-server access
    logger. Without a `ServingConfig` (e.g. `uvicorn --http app.serving:BoundedHttpProtocol`) it uses the
    default `HttpLimits` and `uvicorn.access`."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        serving = config if isinstance(config, ServingConfig) else None
        self.limits = serving.limits if serving is not None else HttpLimits()
        access_logger = serving.access_logger if serving is not None else UVICORN_ACCESS_LOGGER
        if access_logger is None:
            self.access_log = False
        else:
            self.access_logger = logging.getLogger(access_logger)
            self.access_log = self.access_logger.hasHandlers()
        # The bytes that arrive belong to a request head (from connection open, and after each message).
        self._in_head = True
        self._head_bytes = 0
        self._message_done_in_piece = False
        self._head_began_mid_piece = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # --- connection -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._linger_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: what is left of a refused request is read and dropped
        limit = self.limits.max_header_bytes
        while data:
            if self._in_head:
                self._arm_head_timer()
                # Never more than the head's remaining budget: the parser buffers an unfinished header.
                room = limit - self._head_bytes
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
            else:
                piece, data = data, b""
            self._message_done_in_piece = False
            super().data_received(piece)
            if self.parser is None or self.transport.is_closing():
                return  # a 400 from uvicorn, or the connection is gone
            if self._in_head and self._head_began_mid_piece:
                # A pipelined head began after another message inside this piece, at an offset the parser
                # does not tell: count what it handed over of the head. A field it is still reading is
                # missed, which is at most this one read (≤ 256 KiB), once.
                self._head_bytes = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) + 16
                self._head_began_mid_piece = False
                self._arm_head_timer()
            if self._in_head and self._head_bytes >= limit:
                log.warning("%s - request head over %d bytes (MAX_HEADER_BYTES): 431", self._peer(), limit)
                self._refuse(
                    431,
                    "request_header_fields_too_large",
                    "Request header fields too large",
                    f"the request line and headers exceed {limit} bytes",
                )
                return

    # --- parser callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._message_done_in_piece:
            self._head_began_mid_piece = True
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_began_mid_piece = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._message_done_in_piece = True

    # --- bounds -----------------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self._refused or self.transport.is_closing():
            return
        if self._head_bytes == 0:  # opened and never used (a pre-connect, or a socket held open)
            self.transport.close()
            return
        log.info(
            "%s - request head not received within %gs (HEADER_TIMEOUT_S): 408",
            self._peer(),
            self.limits.header_timeout_s,
        )
        self._refuse(
            408,
            "request_timeout",
            "Request timeout",
            f"the request line and headers did not arrive within {self.limits.header_timeout_s:g} s",
        )

    def _refuse(self, status: int, code: str, title: str, detail: str) -> None:
        """Answer `status` (unless a response is being written: then just close) and stop serving."""
        self._refused = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # the answer would land inside another response
            return
        body = bytes(problem(status, code, title, detail).body)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # Lingering close: closing with unread input would reset the connection, and a client still
        # sending its head would see the reset instead of the answer.
        self.transport.write_eof()
        self._linger_timer = self.loop.call_later(_LINGER_S, self.transport.close)

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "-"
