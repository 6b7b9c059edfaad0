"""SandboxServer: the emulator served by uvicorn inside the caller's event loop, on loopback only.

Embedded (the gateway's lifespan, tests) it leaves signal handling and logging configuration to its
host process and keeps no access log; `serve_forever` (the `wan-gateway sandbox` command) runs it
standalone with uvicorn's own, access log included (on `uvicorn.access.sandbox`). Either way it is
served by `app.serving`'s protocol.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette

from app.sandbox.app import create_sandbox_app
from app.sandbox.config import SandboxConfig
from app.sandbox.emulator import Emulator
from app.sandbox.faults import FaultSet
from app.sandbox.media import is_loopback_host
from app.sandbox.settings import DEFAULT_API_KEY
from app.sandbox.stats import SandboxStats
from app.serving import SANDBOX_ACCESS_LOGGER, EmbeddedServer, ServingConfig

log = logging.getLogger("uvicorn.error")


def _loopback_address(host: str) -> str:
    """The address to bind: `host` itself, which must be a loopback address (or `localhost`)."""
    if not is_loopback_host(host):
        raise ValueError(f"the sandbox only listens on loopback addresses, not {host!r}")
    return "127.0.0.1" if host == "localhost" else host


class _StandaloneServer(uvicorn.Server):
    """`wan-gateway sandbox`: uvicorn's own signal handling and shutdown, and `ready` once it listens.
    Embedded, the sandbox runs on `app.serving.EmbeddedServer` (its host stops it)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    def request_exit(self) -> None:
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()


class SandboxServer:
    """`async with SandboxServer(config) as sandbox:` then point a client at `sandbox.base_url`."""

    def __init__(self, config: SandboxConfig, *, standalone: bool = False) -> None:
        self.config = config
        self._address = _loopback_address(config.host)
        self._standalone = standalone
        self.app: Starlette = create_sandbox_app(config)
        self._server: _StandaloneServer | EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    # --- what tests and the gateway use --------------------------------------------------------------

    @property
    def emulator(self) -> Emulator:
        emulator: Emulator = self.app.state.emulator
        return emulator

    @property
    def faults(self) -> FaultSet:
        return self.emulator.faults

    @property
    def stats(self) -> SandboxStats:
        return self.emulator.stats

    @property
    def api_key(self) -> str:
        return self.config.api_keys[0]

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the sandbox server is not started")
        return self._port

    @property
    def public_url(self) -> str:
        """scheme://host:port of the server (result files and uploads live under it)."""
        host = f"[{self._address}]" if ":" in self._address else self._address
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The DashScope base URL to configure a client with (ends in /api/v1)."""
        return f"{self.public_url}/api/v1"

    def put_upload(self, key: str, data: bytes) -> None:
        """Store a file as if uploaded, so `oss://<key>` resolves (any key, no policy needed)."""
        self.emulator.uploads.put(key, data)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the sandbox server is already started")
        family = socket.AF_INET6 if ":" in self._address else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio only disables Nagle on accepted sockets whose proto says TCP,
        # and with Nagle on, every keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._address, self.config.port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        standalone = self._standalone
        uv_config = ServingConfig(
            self.app,
            host=self._address,
            port=self._port,
            lifespan="on",
            # Embedded: leave the host's logging alone (None skips uvicorn's dictConfig and levels), and
            # keep no access log of our own: the gateway's HTTP client logs its upstream calls already.
            # Standalone: its lines on `uvicorn.access.sandbox` (uvicorn's access format, and a name of
            # its own). Never `access_log=False`: that empties the shared `uvicorn.access` logger.
            log_config=uvicorn.config.LOGGING_CONFIG if standalone else None,
            log_level="info" if standalone else None,
            access_logger=SANDBOX_ACCESS_LOGGER if standalone else None,
            timeout_graceful_shutdown=5,
        )
        server = _StandaloneServer(uv_config) if standalone else EmbeddedServer(uv_config)
        task = asyncio.create_task(self._serve(server, sock), name="sandbox-server")
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            self._port = None
            await task  # raises the start-up failure
            raise RuntimeError("the sandbox server stopped during start-up")
        self._server, self._task = server, task

    @staticmethod
    async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits on start-up failure; never let that end the loop
            raise RuntimeError("the sandbox server failed to start") from exc
        finally:
            sock.close()

    async def wait(self) -> None:
        """Until the server stops (standalone: on SIGINT/SIGTERM)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        task, server = self._task, self._server
        if task is None or server is None:
            return
        server.request_exit()
        try:
            await task
        finally:
            self._task = self._server = None
            self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve_forever(config: SandboxConfig) -> None:
    """Run the sandbox standalone until SIGINT/SIGTERM (the `wan-gateway sandbox` command). Like
    `uvicorn.run`, uvicorn re-raises the signal once shut down: callers catch KeyboardInterrupt."""
    server = SandboxServer(config, standalone=True)
    await server.start()
    # The default key is public (logsafety.PUBLIC_KEYS: the log shows it); a configured one is not repeated.
    # The derived keys of further accounts are not spelled out: the redactor would mask `sk-sandbox-2`.
    key = server.api_key if server.api_key == DEFAULT_API_KEY else "the configured SANDBOX_API_KEY"
    count = len(config.api_keys)
    if count == 1:
        log.info("DashScope sandbox: base URL %s, API key %s", server.base_url, key)
    else:
        log.info(
            "DashScope sandbox: base URL %s, %d accounts, API key %s and, for account n = 2…%d, "
            "the same key followed by -n",
            server.base_url,
            count,
            key,
            count,
        )
    try:
        await server.wait()
    finally:
        await server.stop()
