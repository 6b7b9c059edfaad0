"""S3 for the tests: a real moto S3 server on 127.0.0.1 (a subprocess), fresh buckets, and a loopback proxy
in front of it that can fail or hold chosen requests (an S3 outage midway through an upload)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import httpx
import uvicorn
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from app.tls import client_context
from tests.helpers import wait_for

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import HeadObjectOutputTypeDef

#: The credentials and region every S3 test runs with (moto accepts any).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Failures are injected on purpose; botocore's retries (with backoff) would only slow the tests down.
    "AWS_MAX_ATTEMPTS": "1",
}
#: Variables that would point botocore somewhere else than the test's server and credentials.
AWS_ENV_CLEARED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_RETRY_MODE",
    "AWS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class MotoServer:
    """`python -m moto.server` on 127.0.0.1."""

    endpoint_url: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, log: Path, *, within: float = 60.0) -> MotoServer:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in AWS_ENV_CLEARED}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        server = cls(f"http://127.0.0.1:{port}", process, log)
        server._wait_until_it_answers(within)
        return server

    def _wait_until_it_answers(self, within: float) -> None:
        deadline = time.monotonic() + within
        with httpx.Client(trust_env=False, timeout=2, verify=client_context(trust_env=False)) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"moto server exited: {self.log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.endpoint_url}/moto-api/").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer within {within}s: {self.log.read_text()}")
                time.sleep(0.05)  # polling with a deadline: the server is starting up

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


#: One session for the tests' own clients: it caches the parsed S3 model (~0.2 s per client otherwise).
_SESSION = get_session()


@contextlib.asynccontextmanager
async def s3_client(endpoint_url: str) -> AsyncIterator[S3Client]:
    """A plain client for the test's own look at the bucket (not the gateway's)."""
    config = AioConfig(signature_version="s3v4", retries={"max_attempts": 1})
    async with _SESSION.create_client("s3", endpoint_url=endpoint_url, config=config) as client:
        yield client


@dataclass
class Bucket:
    """A fresh bucket on the moto server, and the questions tests ask about it."""

    name: str
    endpoint_url: str
    client: S3Client

    async def keys(self) -> list[str]:
        """Every object in the bucket."""
        answer = await self.client.list_objects_v2(Bucket=self.name)
        return sorted(obj["Key"] for obj in answer.get("Contents", []))

    async def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        answer = await self.client.list_multipart_uploads(Bucket=self.name)
        return sorted(upload["Key"] for upload in answer.get("Uploads", []))

    async def read(self, key: str) -> bytes:
        answer = await self.client.get_object(Bucket=self.name, Key=key)
        async with answer["Body"] as body:
            return await body.read()

    async def head(self, key: str) -> HeadObjectOutputTypeDef:
        return await self.client.head_object(Bucket=self.name, Key=key)


# --- a proxy that breaks S3 on purpose -----------------------------------------------------------------

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "content-length",
}
_INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


@dataclass
class FaultyS3:
    """An ASGI app that relays S3 requests to `upstream`, except the ones a test picked:

    fail_part   every UploadPart of this part number answers 500 InternalError
    fail_puts   every PUT (PutObject, UploadPart) answers 500 InternalError
    hold_part   the UploadPart of this part number waits until `release` is set (`held` says it arrived)

    `requests` records the method and path of every request relayed or failed.
    """

    upstream: str
    fail_part: int | None = None
    fail_puts: bool = False
    hold_part: int | None = None
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    failed: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope["query_string"].decode()
        self.requests.append((scope["method"], scope["path"]))
        part = parse_qs(query).get("partNumber", [""])[0]
        if part and self.hold_part == int(part):
            self.held.set()
            await self.release.wait()
        # Every PUT of a test's objects is a PutObject or an UploadPart (buckets are made behind the proxy).
        if (part and self.fail_part == int(part)) or (self.fail_puts and scope["method"] == "PUT"):
            self.failed += 1
            await self._answer(send, 500, [(b"content-type", b"application/xml")], _INTERNAL_ERROR)
            return
        headers = [(k, v) for k, v in scope["headers"] if k.decode().lower() not in _HOP_BY_HOP]
        target = self.upstream + scope["raw_path"].decode() + (f"?{query}" if query else "")
        async with httpx.AsyncClient(
            trust_env=False, timeout=30, verify=client_context(trust_env=False)
        ) as client:
            answer = await client.request(scope["method"], target, headers=headers, content=body)
        out = [(k.encode(), v.encode()) for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP]
        await self._answer(send, answer.status_code, out, answer.content)

    @staticmethod
    async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def run_faulty_s3(upstream: str) -> AsyncIterator[tuple[str, FaultyS3]]:
    """Serve a `FaultyS3` in front of `upstream` on 127.0.0.1; yield its URL and the app (to set faults)."""
    app = FaultyS3(upstream)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:

        async def started() -> bool:
            if task.done():
                task.result()  # raise the startup error
            return server.started

        await wait_for(started, within=30, what="the S3 proxy to start")
        yield f"http://127.0.0.1:{port}", app
    finally:
        app.release.set()  # a held request must not keep the server from stopping
        server.should_exit = True
        await task
        sock.close()
