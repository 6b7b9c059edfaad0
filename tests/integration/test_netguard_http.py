"""pinned() over real sockets: a tiny HTTP(S) server on 127.0.0.1, reached with httpx.AsyncClient.

These show that the pinned request goes to the vetted address with the original Host header, that the
name is not looked up again when connecting (what defeats DNS rebinding), and that for https the
`sni_hostname` extension keeps SNI and the certificate check on the original host name.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.netguard import UnsafeURL, vet_url
from tests.helpers import self_signed_certificate


@dataclass
class Seen:
    request_lines: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)


@dataclass
class Server:
    port: int
    seen: Seen


async def _handle(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:] if line)
    await reader.readexactly(int(headers.get("Content-Length", headers.get("content-length", "0"))))
    seen.request_lines.append(head[0])
    seen.hosts.append(headers.get("Host", headers.get("host", "")))
    seen.peers.append(writer.get_extra_info("peername")[0])
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    seen = Seen()
    srv = await asyncio.start_server(lambda r, w: _handle(seen, r, w), "127.0.0.1", 0)
    async with srv:
        yield Server(srv.sockets[0].getsockname()[1], seen)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "hooks.test")


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[Server]:
    seen = Seen()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    context.sni_callback = lambda _sock, name, _ctx: seen.sni.append(name)
    srv = await asyncio.start_server(lambda r, w: _handle(seen, r, w), "127.0.0.1", 0, ssl=context)
    async with srv:
        yield Server(srv.sockets[0].getsockname()[1], seen)


def client(verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    # trust_env=False: a developer's HTTP(S)_PROXY must not catch loopback traffic.
    return httpx.AsyncClient(trust_env=False, verify=verify, follow_redirects=False, timeout=5)


async def test_pinned_request_reaches_the_vetted_loopback_address(server: Server) -> None:
    vetted = await vet_url(f"http://localhost:{server.port}/x?y=1", allow_private=True)  # real resolver
    url, headers, extensions = vetted.pinned()
    assert url == f"http://127.0.0.1:{server.port}/x?y=1"
    assert headers == {"Host": f"localhost:{server.port}"} and extensions == {}

    async with client() as http:
        response = await http.post(
            url, headers=headers, extensions=extensions, json={"type": "job.succeeded"}
        )
    assert (response.status_code, response.text) == (200, "ok")
    assert server.seen.request_lines == ["POST /x?y=1 HTTP/1.1"]
    assert server.seen.hosts == [f"localhost:{server.port}"]
    assert server.seen.peers == ["127.0.0.1"]


async def test_the_same_url_is_refused_without_allow_private(server: Server) -> None:
    with pytest.raises(UnsafeURL, match="ALLOW_PRIVATE_URLS=true"):
        await vet_url(f"http://localhost:{server.port}/x", allow_private=False)


async def test_connecting_does_not_look_the_name_up_again(server: Server) -> None:
    """The name answered 127.0.0.1 when vetted and resolves nowhere now (as if the DNS record had been
    changed): the pinned request still goes only to the vetted address."""
    answers = [["127.0.0.1"]]

    async def one_answer_only(host: str, port: int) -> Sequence[str]:
        return answers.pop()

    vetted = await vet_url(
        f"http://hooks.rebind.test:{server.port}/cb", allow_private=True, resolver=one_answer_only
    )
    url, headers, extensions = vetted.pinned()
    async with client() as http:
        response = await http.post(url, headers=headers, extensions=extensions, content=b"{}")
    assert response.status_code == 200
    assert server.seen.hosts == [f"hooks.rebind.test:{server.port}"]
    assert server.seen.peers == ["127.0.0.1"]


async def test_https_keeps_sni_and_certificate_check_on_the_original_host(
    tls_server: Server, certificate: tuple[Path, Path]
) -> None:
    async def hooks_test(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.1"]

    vetted = await vet_url(
        f"https://hooks.test:{tls_server.port}/cb", allow_private=True, resolver=hooks_test
    )
    url, headers, extensions = vetted.pinned()
    assert url == f"https://127.0.0.1:{tls_server.port}/cb"
    trust = ssl.create_default_context(cafile=str(certificate[0]))

    async with client(trust) as http:
        response = await http.post(url, headers=headers, extensions=extensions, content=b"{}")
        assert response.status_code == 200
        assert tls_server.seen.sni == ["hooks.test"]
        assert tls_server.seen.hosts == [f"hooks.test:{tls_server.port}"]

    # Without the extension the certificate is checked against 127.0.0.1, which it does not name:
    # the check is live, and the extension is what points it at the right host.
    async with client(trust) as http:
        with pytest.raises(httpx.ConnectError, match="IP address mismatch"):
            await http.post(url, headers=headers, content=b"{}")
