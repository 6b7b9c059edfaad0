"""The reference-image fetcher against real HTTP servers on 127.0.0.1 (`tests/imageserver.py`).

Names like `images.test` are answered by a resolver given to the fetcher (always 127.0.0.1), so the tests
see which host each hop vetted and that the request still reaches the vetted address. To show a redirect
from a *public* host into loopback being refused with ALLOW_PRIVATE_URLS off, `public.test` resolves to a
public address that a routing transport delivers to the local server, as a network would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.jobs.fetch import MAX_REDIRECTS, ImageFetcher, fetch_client
from app.jobs.images import ImageChecker, inspect_image
from app.providers.base import InvalidInput
from app.wiring import image_limits
from tests.conftest import free_port
from tests.helpers import image_bytes, self_signed_certificate
from tests.imageserver import Body, Endless, Redirect, Stall, image_server

PNG = image_bytes(640, 360)
PUBLIC_IP = "93.184.215.14"  # a global unicast address; only the routing transport ever "reaches" it

LIMITS = image_limits(Settings.model_construct())  # the IMAGE_* defaults


class DNS:
    """Answers every name with 127.0.0.1 (public.test with PUBLIC_IP) and records what was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return [PUBLIC_IP if host == "public.test" else "127.0.0.1"]


class RouteToLoopback(httpx.AsyncBaseTransport):
    """Delivers connections for PUBLIC_IP to 127.0.0.1: the local server plays a public host."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC_IP:
            request.url = request.url.copy_with(host="127.0.0.1")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@contextlib.asynccontextmanager
async def fetcher(
    *,
    allow_private: bool = True,
    timeout_s: float = 10.0,
    max_bytes: int = 10 * 1024 * 1024,
    dns: DNS | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[ImageFetcher]:
    async with fetch_client(timeout_s, transport=transport) as http:
        yield ImageFetcher(
            http, allow_private=allow_private, timeout_s=timeout_s, max_bytes=max_bytes, resolver=dns or DNS()
        )


async def refusal(fetch: ImageFetcher, url: str) -> str:
    with pytest.raises(InvalidInput) as info, ImageChecker(LIMITS, concurrency=2, timeout_s=2.0) as checker:
        await inspect_image(url, "reference_image", checker, fetch)
    assert info.value.field == "reference_image"
    return info.value.message


async def test_an_image_is_fetched_checked_hashed_and_sent_as_its_bytes() -> None:
    dns = DNS()
    routes = {"/cat.png": Body(PNG, headers=(("Content-Type", "image/png"),))}
    async with image_server(routes) as server, fetcher(dns=dns) as fetch:
        url = server.url("/cat.png", host="images.test")
        with ImageChecker(LIMITS, concurrency=2, timeout_s=2.0) as checker:
            image = await inspect_image(url, "reference_image", checker, fetch)

    assert image.sha256 == hashlib.sha256(PNG).hexdigest()
    assert (image.width, image.height, image.mime, image.size_bytes) == (640, 360, "image/png", len(PNG))
    assert image.uri == "data:image/png;base64," + base64.b64encode(PNG).decode()  # what upstream gets
    assert image.describe() == {
        "kind": "url",
        "url": url,
        "fetched": True,
        "mime": "image/png",
        "bytes": len(PNG),
        "sha256": hashlib.sha256(PNG).hexdigest(),
        "width": 640,
        "height": 360,
    }
    # Vetted by name, sent to the vetted address with the name in Host.
    assert dns.asked == ["images.test"]
    assert [(s.path, s.host, s.peer) for s in server.requests] == [
        ("/cat.png", f"images.test:{server.port}", "127.0.0.1")
    ]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "images.test")


async def test_https_is_pinned_with_the_certificate_checked_for_the_name(
    certificate: tuple[Path, Path],
) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(*certificate)
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    async with (
        image_server({"/cat.png": Body(PNG)}, tls=server_tls) as server,
        fetcher(transport=httpx.AsyncHTTPTransport(verify=trust)) as fetch,
    ):
        fetched = await fetch.fetch(server.url("/cat.png", host="images.test"), "reference_image")
        assert fetched.data == PNG
        assert [(s.host, s.peer) for s in server.requests] == [(f"images.test:{server.port}", "127.0.0.1")]
        # The certificate is checked, and against the name: the same server by its IP is refused.
        message = await refusal(fetch, server.url("/cat.png"))
    assert "could not fetch the image from 127.0.0.1: ConnectError" in message
    assert "IP address mismatch" in message


async def test_a_redirect_chain_is_followed_and_every_hop_vetted() -> None:
    dns = DNS()
    async with image_server() as server:
        server.routes.update(
            {
                "/a": Redirect(server.url("/b", host="hop2.test"), 301),
                "/b": Redirect("/c", 307),  # relative: against hop2.test
                "/c": Redirect(f"//hop3.test:{server.port}/cat.png#frag", 308),  # scheme-relative
                "/cat.png": Body(PNG),
            }
        )
        async with fetcher(dns=dns) as fetch:
            fetched = await fetch.fetch(server.url("/a", host="hop1.test"), "reference_image")

    assert fetched.data == PNG and fetched.redirects == 3
    assert fetched.url == server.url("/cat.png", host="hop3.test")
    assert dns.asked == ["hop1.test", "hop2.test", "hop2.test", "hop3.test"]
    assert [(s.path, s.host) for s in server.requests] == [
        ("/a", f"hop1.test:{server.port}"),
        ("/b", f"hop2.test:{server.port}"),
        ("/c", f"hop2.test:{server.port}"),
        ("/cat.png", f"hop3.test:{server.port}"),
    ]


async def test_a_redirect_to_the_metadata_service_is_refused_even_with_private_urls_allowed() -> None:
    routes = {"/r": Redirect("http://169.254.169.254/latest/meta-data/")}
    async with image_server(routes) as server, fetcher(allow_private=True) as fetch:
        message = await refusal(fetch, server.url("/r"))
    assert message.startswith("refused: redirect 1 to http://169.254.169.254/latest/meta-data/: ")
    assert "169.254.169.254 is the instance metadata service" in message
    assert server.paths == ["/r"]


async def test_credentials_in_a_redirect_are_refused_and_not_repeated() -> None:
    routes = {"/r": Redirect("http://admin:s3cret@images.test/cat.png")}
    async with image_server(routes) as server, fetcher() as fetch:
        message = await refusal(fetch, server.url("/r"))
    assert message.startswith("refused: redirect 1 to http://…@images.test/cat.png: ")
    assert "credentials" in message and "s3cret" not in message


async def test_a_public_host_redirecting_to_loopback_is_refused_without_allow_private() -> None:
    async with image_server() as server:
        server.routes.update(
            {
                "/ok": Body(PNG),
                "/to-public": Redirect(server.url("/ok", host="public.test")),
                "/to-loopback": Redirect(server.url("/ok")),
            }
        )
        async with fetcher(allow_private=False, transport=RouteToLoopback()) as fetch:
            # The harness works: public to public is fetched with private URLs off.
            fetched = await fetch.fetch(server.url("/to-public", host="public.test"), "reference_image")
            assert fetched.data == PNG and fetched.redirects == 1
            server.requests.clear()

            message = await refusal(fetch, server.url("/to-loopback", host="public.test"))
    assert message.startswith(f"refused: redirect 1 to {server.url('/ok')}: 127.0.0.1 is a loopback address")
    assert "ALLOW_PRIVATE_URLS" in message
    assert server.paths == ["/to-loopback"]


async def test_at_most_five_redirects_are_followed() -> None:
    async with image_server() as server:
        for chain, length in (("five", MAX_REDIRECTS), ("six", MAX_REDIRECTS + 1)):
            for i in range(length):
                server.routes[f"/{chain}/{i}"] = Redirect(f"/{chain}/{i + 1}")
            server.routes[f"/{chain}/{length}"] = Body(PNG)
        async with fetcher() as fetch:
            fetched = await fetch.fetch(server.url("/five/0"), "reference_image")
            assert fetched.redirects == MAX_REDIRECTS and fetched.data == PNG
            message = await refusal(fetch, server.url("/six/0"))
    assert message == f"refused: more than {MAX_REDIRECTS} redirects"
    assert [p for p in server.paths if p.startswith("/six/")] == [f"/six/{i}" for i in range(6)]


async def test_an_endless_body_is_refused_once_it_passes_the_cap() -> None:
    async with image_server({"/endless": Endless()}) as server, fetcher(max_bytes=200_000) as fetch:
        message = await refusal(fetch, server.url("/endless"))
    assert message == "the image is larger than 200000 bytes"
    assert server.body_bytes_sent < 16 * 1024 * 1024  # it stopped long before the server's own limit


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 50000000\r\n\r\n\x89PNG"
    async with image_server({"/big": Stall(head)}) as server, fetcher(max_bytes=200_000) as fetch:
        started = time.monotonic()
        message = await refusal(fetch, server.url("/big"))
    # The body never comes: had the fetcher waited for it, this would be the 10 s timeout instead.
    assert message == "the image is 50000000 bytes; the limit is 200000"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "route",
    [Stall(), Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n\x89PNG\r\n")],
    ids=["no-answer", "body-stalls"],
)
async def test_a_stalling_server_times_out(route: Stall) -> None:
    async with image_server({"/slow": route}) as server, fetcher(timeout_s=0.3) as fetch:
        message = await refusal(fetch, server.url("/slow"))
    assert message == "fetching the image timed out after 0.3 s"


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (Body(b"gone", status=404), "images.test answered 404 Not Found"),
        (Body(b"oops", status=500), "images.test answered 500 Internal Server Error"),
        (Redirect("", 302), "images.test answered 302 Found without a Location"),
        (Body(b"<html>a page</html>", headers=(("Content-Type", "text/html"),)), "not a readable image"),
        (Body(image_bytes(640, 360, "GIF")), "GIF images are not accepted"),
        (Body(image_bytes(200, 200)), "width is 200 px"),
        (Body(PNG, headers=(("Content-Encoding", "gzip"),)), "sent the image gzip-encoded"),
        (Body(b""), "the image is empty"),
    ],
    ids=["404", "500", "no-location", "html", "gif", "small", "gzip", "empty"],
)
async def test_refusals_name_the_reason(route: Any, expected: str) -> None:
    async with image_server({"/x": route}) as server, fetcher() as fetch:
        message = await refusal(fetch, server.url("/x", host="images.test"))
    assert expected in message
    assert server.paths == ["/x"]


async def test_an_unreachable_host_is_refused() -> None:
    async with fetcher() as fetch:
        message = await refusal(fetch, f"http://127.0.0.1:{free_port()}/cat.png")
    assert message.startswith("could not fetch the image from 127.0.0.1: ConnectError")


async def test_each_fetch_has_its_own_connection_and_no_cookies() -> None:
    """A kept connection or cookie would be filed under the pinned IP and could serve another host."""
    routes = {"/cat.png": Body(PNG, headers=(("Set-Cookie", "session=abc; Path=/"),))}
    async with image_server(routes) as server, fetcher() as fetch:
        for host in ("one.test", "two.test", "one.test"):
            await fetch.fetch(server.url("/cat.png", host=host), "reference_image")
    assert server.connections == 3
    assert all("cookie" not in seen.headers for seen in server.requests)
    assert [seen.headers.get("accept-encoding") for seen in server.requests] == ["identity"] * 3


async def test_oss_urls_are_not_fetched() -> None:
    async with fetcher() as fetch:
        with ImageChecker(LIMITS, concurrency=2, timeout_s=2.0) as checker:
            image = await inspect_image(
                "oss://dashscope-instant/x/cat.png", "reference_image", checker, fetch
            )
    assert image.uri == "oss://dashscope-instant/x/cat.png" and image.sha256 is None
