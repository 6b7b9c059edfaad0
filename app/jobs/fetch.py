"""Fetching a client's `http(s)://` image URL ourselves, before a job is stored or anything is spent.

A `reference_image` (or `last_frame_image`) given as an http(s) URL is downloaded here, then checked and
hashed by `images.py` exactly like a `data:` URI, and sent upstream as one: what DashScope renders is
exactly the bytes we validated and hashed, whatever the URL serves later.

The URL is the client's, so the gateway must not become their way into our network (SSRF):
- every URL — the first one and each redirect target — goes through `netguard.vet_url` (public addresses
  only unless ALLOW_PRIVATE_URLS; cloud metadata addresses never), and the request is sent to the vetted
  address itself (`VettedURL.pinned()`), so DNS cannot change between the check and the connection;
- redirects are followed by hand (at most `MAX_REDIRECTS`), each `Location` resolved against the URL that
  answered it and vetted again;
- the body is streamed and refused as soon as it passes the byte cap (a larger `Content-Length` is refused
  before reading anything); everything — lookups, connects, redirects, body — shares one total timeout.

Every refusal is an `InvalidInput` naming the field, so the API answers 422 before the job exists.

The lifespan owns the one `httpx.AsyncClient` (`fetch_client`). It keeps no connection alive (and asks
the server to close each one): httpx pools connections by (scheme, IP, port), and a pinned request names
only the IP, so a kept connection could be reused for another host behind the same address, with TLS set
up for the first host's name. Cookies are never stored, for the same reason (the jar would file them
under the IP). The pool's connection limit bounds how many fetches run at once.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import urllib.parse
from dataclasses import dataclass

import httpx

from app.netguard import Resolver, UnsafeURL, vet_url
from app.providers.base import InvalidInput
from app.tls import client_context

#: Redirects followed before giving up (browsers allow about 20; an image needs few).
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Fetches in flight at once per process; more wait for a connection (within their timeout).
MAX_CONNECTIONS = 64
#: Sent with every fetch. `identity`: a compressed body could inflate past the cap between two checks.
_HEADERS = {
    "Accept": "image/jpeg, image/png, image/webp, image/bmp;q=0.9, */*;q=0.1",
    "Accept-Encoding": "identity",
    "Connection": "close",
    "User-Agent": "wan-gateway (reference image fetch)",
}
_SHOWN_URL_CHARS = 200


def fetch_client(timeout_s: float, *, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The client `ImageFetcher` needs: no redirects, no keep-alive, no cookies, no proxy from the
    environment (it would carry requests past the guard), and `timeout_s` on every network step."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=0),
        follow_redirects=False,
        trust_env=False,
        verify=client_context(trust_env=False),
        cookies=http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
        transport=transport,
    )


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    url: str  # where the bytes came from: the client's URL, or the last redirect target
    redirects: int


class ImageFetcher:
    """GET an http(s) image URL under the SSRF guard, a byte cap and a total timeout."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        allow_private: bool,
        timeout_s: float,
        max_bytes: int,
        resolver: Resolver | None = None,
    ) -> None:
        self._http = http
        self._allow_private = allow_private
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._resolver = resolver

    async def fetch(self, url: str, field: str) -> FetchedImage:
        """The image's bytes. Raises InvalidInput(field) with a sentence fit to show the client."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._follow(url, field)
        except (TimeoutError, httpx.TimeoutException):
            raise InvalidInput(field, f"fetching the image timed out after {self._timeout_s:g} s") from None

    async def _follow(self, url: str, field: str) -> FetchedImage:
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            after = "" if hop == 0 else f" (after {hop} redirect{'s' if hop > 1 else ''})"
            try:
                vetted = await vet_url(current, allow_private=self._allow_private, resolver=self._resolver)
            except UnsafeURL as exc:
                where = "" if hop == 0 else f"redirect {hop} to {_shown(current)}: "
                raise InvalidInput(field, f"refused: {where}{exc.reason}") from None
            target, pin_headers, extensions = vetted.pinned()
            request = self._http.build_request(
                "GET", target, headers={**_HEADERS, **pin_headers}, extensions=extensions
            )
            try:
                response = await self._http.send(request, stream=True, follow_redirects=False)
            except httpx.TimeoutException:
                raise
            except httpx.HTTPError as exc:
                raise InvalidInput(
                    field, f"could not fetch the image from {vetted.host}{after}: {_reason(exc)}"
                ) from None
            try:
                status = response.status_code
                if status in _REDIRECT_STATUSES:
                    current = self._next_hop(current, response, vetted.host, hop, field)
                    continue
                if not 200 <= status < 300:
                    raise InvalidInput(field, f"{vetted.host} answered {_status(response)}{after}")
                data = await self._read(response, vetted.host, field)
                return FetchedImage(data=data, url=current, redirects=hop)
            finally:
                await response.aclose()
        raise AssertionError("unreachable: the last hop returns or raises")

    def _next_hop(self, current: str, response: httpx.Response, host: str, hop: int, field: str) -> str:
        location = response.headers.get("location")
        if not location:
            raise InvalidInput(field, f"{host} answered {_status(response)} without a Location")
        if hop == MAX_REDIRECTS:
            raise InvalidInput(field, f"refused: more than {MAX_REDIRECTS} redirects")
        try:
            return str(httpx.URL(current).join(location.strip()).copy_with(fragment=None))
        except (httpx.InvalidURL, ValueError):
            raise InvalidInput(
                field, f"refused: redirect {hop + 1} has an invalid Location ({_shown(location)})"
            ) from None

    async def _read(self, response: httpx.Response, host: str, field: str) -> bytes:
        limit = self._max_bytes
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise InvalidInput(field, f"the image is {int(declared)} bytes; the limit is {limit}")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise InvalidInput(
                field, f"{host} sent the image {encoding[:40]}-encoded; only plain bodies are accepted"
            )
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > limit:
                    raise InvalidInput(field, f"the image is larger than {limit} bytes")
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            raise InvalidInput(field, f"reading the image from {host} failed: {_reason(exc)}") from None
        return bytes(body)


def _status(response: httpx.Response) -> str:
    """`404 Not Found`, or `404` when the server sent no reason phrase."""
    phrase = response.reason_phrase.strip()[:60]
    return f"{response.status_code} {phrase}" if phrase else str(response.status_code)


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _shown(url: str) -> str:
    """A URL fit for an error message: no `user:password@` (netguard refuses it, and never repeats it),
    at most `_SHOWN_URL_CHARS` characters."""
    try:
        parts = urllib.parse.urlsplit(url)
        if "@" in parts.netloc:
            url = urllib.parse.urlunsplit(parts._replace(netloc="…@" + parts.netloc.rpartition("@")[2]))
    except ValueError:
        pass
    return url if len(url) <= _SHOWN_URL_CHARS else url[:_SHOWN_URL_CHARS] + "…"
