"""SSRF guard for URLs that clients hand us: webhook targets and fetched `reference_image` URLs.

`vet_url` parses a URL the way httpx will, resolves its host, and refuses it unless every address is a
public one (or `ALLOW_PRIVATE_URLS` lifts that rule; cloud metadata endpoints stay refused regardless).
`VettedURL.pinned()` then sends the request to the vetted address itself: checking a name and letting
the HTTP client resolve it again later is a time-of-check/time-of-use gap that DNS rebinding walks through.

What makes the check robust is that it judges *addresses*, never spellings: `http://0x7f.1/`,
`http://2130706433/` and `http://[::ffff:127.0.0.1]/` all become 127.0.0.1 before anything is decided.

Using the result safely (the caller's part):
- send to `pinned()`'s URL with its headers and extensions, never to the original URL;
- do not follow redirects (`follow_redirects=False`): a redirect target has not been vetted;
- httpx pools connections by (scheme, IP, port), so two https hosts pinned to one IP (a CDN) could
  share a TLS connection set up for the first one's SNI; a client per delivery, or per host, avoids it.
"""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

import httpx

IPAddress = IPv4Address | IPv6Address
#: host, port → the addresses it resolves to, as strings. Raise OSError when it does not resolve.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_URL_LENGTH = 2048
#: A lookup slower than this is refused rather than holding a request (or a webhook worker) hostage.
RESOLVE_TIMEOUT_S = 5.0

_ALLOW_HINT = "set ALLOW_PRIVATE_URLS=true to allow loopback, private and other non-public targets"

#: Refused even with ALLOW_PRIVATE_URLS: they hand out instance credentials to anyone who can ask.
_METADATA_ADDRESSES: dict[IPAddress, str] = {
    IPv4Address("169.254.169.254"): "the instance metadata service of AWS, GCP, Azure, Oracle and others",
    IPv4Address("169.254.170.2"): "the AWS ECS task metadata and credentials endpoint",
    IPv4Address("169.254.170.23"): "the AWS EKS Pod Identity agent",
    IPv4Address("100.100.100.200"): "the Alibaba Cloud instance metadata service",
    IPv4Address("168.63.129.16"): "the Azure WireServer",
    IPv4Address("169.254.0.23"): "the Tencent Cloud instance metadata service",
    IPv4Address("192.0.0.192"): "the legacy Oracle Cloud instance metadata service",
    IPv6Address("fd00:ec2::254"): "the AWS instance metadata service (IPv6)",
    IPv6Address("fd00:ec2::23"): "the AWS EKS Pod Identity agent (IPv6)",
}
#: Refused by name before any lookup: inside a cloud VM they resolve (via search domains for the short
#: forms) to the addresses above, and a name is refused even where it happens not to resolve.
_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)

# IANA special-purpose ranges, listed explicitly rather than trusting `is_global` alone: its answers
# changed between patch releases of Python (3.11.10 / 3.12.4), and in 3.11.7 multicast counts as global.
_V4_SPECIAL: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), label)
    for net, label in (
        ("0.0.0.0/32", "the unspecified address"),
        ("0.0.0.0/8", 'a "this network" address (0.0.0.0/8)'),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address (100.64.0.0/10)"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved address (IETF protocol assignments)"),
        ("192.0.2.0/24", "a reserved documentation address"),
        ("192.88.99.0/24", "a reserved address (6to4 relay anycast)"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a reserved address (benchmarking)"),
        ("198.51.100.0/24", "a reserved documentation address"),
        ("203.0.113.0/24", "a reserved documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)
_V6_SPECIAL: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), label)
    for net, label in (
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a private address (local-use NAT64)"),
        ("100::/64", "a reserved address (discard-only)"),
        ("2001::/23", "a reserved address (IETF protocol assignments, Teredo)"),
        ("2001:db8::/32", "a reserved documentation address"),
        ("3fff::/20", "a reserved documentation address"),
        ("fc00::/7", "a private address (unique local)"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a private address (site-local)"),
        ("ff00::/8", "a multicast address"),
    )
)
#: Global unicast: every other IPv6 address is unallocated or special.
_V6_GLOBAL_UNICAST = IPv6Network("2000::/3")
_NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = IPv6Network("::/96")

#: What a host name may contain once httpx has lowercased and IDNA-encoded it. Anything else
#: (percent-escapes, spaces) would reach getaddrinfo as something other than a DNS name.
_HOSTNAME = re.compile(r"[a-z0-9_.-]+")
#: A last label that is a number makes the host an IPv4 address in inet_aton's (and WHATWG's) eyes.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


class UnsafeURL(ValueError):
    """A URL we refuse to send a request to. `reason` is one sentence, fit to show the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VettedURL:
    """A URL that passed `vet_url`, with every address its host stood for at that moment."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    def pinned(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url_with_first_address, headers, httpx_extensions) to send the request to the vetted address
        itself, so a DNS change between check and connect (rebinding) cannot redirect it: the URL's host is
        replaced by the IP (brackets for IPv6), `Host` header keeps the original host[:port], and for https
        the httpx request extension `sni_hostname` keeps TLS SNI and certificate checks on the original host.

        Only the first address is used (no fallback to the others if it does not answer).
        """
        original = httpx.URL(self.url)
        target = original.copy_with(host=str(self.addresses[0]))
        # netloc is exactly the Host header httpx would have sent for the original URL.
        headers = {"Host": original.netloc.decode("ascii")}
        extensions: dict[str, Any] = {"sni_hostname": self.host} if self.scheme == "https" else {}
        return str(target), headers, extensions


async def vet_url(url: str, *, allow_private: bool, resolver: Resolver | None = None) -> VettedURL:
    """Parse, resolve and judge `url`; raise UnsafeURL unless every address it reaches is acceptable."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"the URL is {len(url)} characters long; at most {MAX_URL_LENGTH} are accepted")
    # Parsed by httpx, the client that will send the request, so the host judged here is the host it
    # would connect to (parsers disagree on inputs like `http://a\@b/`).
    try:
        parsed = httpx.URL(url)
        # Only to see an empty `@` that httpx drops; it also catches brackets httpx lets by mid-host.
        authority = urllib.parse.urlsplit(url).netloc
    except (httpx.InvalidURL, ValueError) as exc:
        raise UnsafeURL(f"the URL is not valid: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        shown = f"'{parsed.scheme}'" if parsed.scheme else "missing"
        raise UnsafeURL(f"the URL scheme is {shown}; only http and https are accepted")
    # `user:pass@` is refused rather than stripped: it is a classic way to disguise the real host, and
    # nothing we call wants credentials in the URL. Not echoed back: they may be real credentials.
    if parsed.userinfo or "@" in authority:
        raise UnsafeURL("the URL contains credentials (user:password@), which are not accepted")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeURL("the URL has no host")
    # httpx lets out-of-range ports through (0, -1, 65536).
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise UnsafeURL(f"port {parsed.port} is out of range (1–65535)")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)

    addresses, spelled = await _addresses(host, port, resolver)
    _judge_all(host, addresses, spelled, allow_private=allow_private)
    return VettedURL(url=url, scheme=parsed.scheme, host=host, port=port, addresses=addresses)


def check_address(ip: IPAddress | str, *, allow_private: bool) -> None:
    """Raise UnsafeURL unless a request may go to this address."""
    try:
        address = ip_address(ip) if isinstance(ip, str) else ip
    except ValueError:
        raise UnsafeURL(f"{ip!r} is not an IP address") from None
    verdict = _judge(address)
    if verdict is not None and (verdict.always or not allow_private):
        raise UnsafeURL(verdict.sentence() + verdict.hint())


# --- resolution -------------------------------------------------------------------------------------


async def _system_resolver(host: str, port: int) -> list[str]:
    """The event loop's getaddrinfo (a thread), the same lookup httpx would make."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def _addresses(
    host: str, port: int, resolver: Resolver | None
) -> tuple[tuple[IPAddress, ...], str | None]:
    """The addresses `host` stands for, and how to say it: None for a plain IP literal, "means" for
    another spelling of an IPv4 address, "resolves to" for a name."""
    if ":" in host:  # httpx only lets a bracketed IPv6 literal through with a colon in the host
        if "%" in host:
            raise UnsafeURL(f"IPv6 zone identifiers ({host}) are not accepted")
        return (ip_address(host),), None
    try:
        return (ip_address(host),), None
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host):
        raise UnsafeURL(f"{host} is not a valid host name")
    name = host.removesuffix(".")
    if any(name == m or name.endswith("." + m) for m in _METADATA_NAMES):
        raise UnsafeURL(f"{host} is a cloud metadata host name and is never accepted")
    # Decimal (2130706433), hex (0x7f.1), short (127.1), octal (0177.1; httpx itself refuses dotted quads
    # with leading zeros): getaddrinfo reads these with inet_aton without asking DNS, so read them the
    # same way here, whatever the resolver.
    if _NUMERIC_LABEL.fullmatch(name.rpartition(".")[2]):
        try:
            return (IPv4Address(socket.inet_aton(name)),), "means"
        except OSError:
            raise UnsafeURL(f"{host} looks like an IPv4 address but is not a valid one") from None

    resolve = resolver or _system_resolver
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            answers = await resolve(host, port)
    except TimeoutError:
        raise UnsafeURL(f"{host} did not resolve within {RESOLVE_TIMEOUT_S:g} s") from None
    except OSError as exc:
        detail = f" ({exc.strerror})" if isinstance(exc, socket.gaierror) and exc.strerror else ""
        raise UnsafeURL(f"{host} does not resolve{detail}") from None
    found: dict[IPAddress, None] = {}  # ordered set: getaddrinfo repeats an address per socket type
    for answer in answers:
        try:
            found[ip_address(answer)] = None
        except ValueError:
            raise UnsafeURL(f"{host} resolves to {answer!r}, which is not an IP address") from None
    if not found:
        raise UnsafeURL(f"{host} does not resolve to any address")
    return tuple(found), "resolves to"


# --- judging ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Verdict:
    address: IPAddress
    judged: IPAddress  # the IPv4 address carried inside an IPv6 one, else `address`
    label: str  # "a private address"
    always: bool  # refused even with ALLOW_PRIVATE_URLS

    def what(self) -> str:
        """After "resolves to": `10.0.0.5, a private address` / `::ffff:a00:5, which maps to 10.0.0.5, …`."""
        if self.judged != self.address:
            return f"{self.address}, which maps to {self.judged}, {self.label}"
        return f"{self.address}, {self.label}"

    def sentence(self) -> str:
        """On its own: `10.0.0.5 is a private address` / `::ffff:a00:5 maps to 10.0.0.5, …`."""
        if self.judged != self.address:
            return f"{self.address} maps to {self.judged}, {self.label}"
        return f"{self.address} is {self.label}"

    def hint(self) -> str:
        return "" if self.always else f"; {_ALLOW_HINT}"


def _judge_all(
    host: str, addresses: tuple[IPAddress, ...], spelled: str | None, *, allow_private: bool
) -> None:
    verdicts = [v for v in map(_judge, addresses) if v is not None]
    # A metadata address is reported first, even behind a private one: suggesting ALLOW_PRIVATE_URLS
    # for a URL that would still be refused with it would be a false promise.
    refused = [v for v in verdicts if v.always] or ([] if allow_private else verdicts)
    if not refused:
        return
    verdict = refused[0]
    message = verdict.sentence() if spelled is None else f"{host} {spelled} {verdict.what()}"
    if len(addresses) > 1:
        message += f" (one of its {len(addresses)} addresses; every one must be acceptable)"
    raise UnsafeURL(message + verdict.hint())


def _judge(address: IPAddress) -> _Verdict | None:
    """Why `address` is not a public one, or None when it is."""
    if isinstance(address, IPv6Address) and address.scope_id:
        return _Verdict(address, address, "a zone-scoped IPv6 address, which cannot be pinned", True)
    judged: IPAddress = address
    if isinstance(address, IPv6Address):
        judged = _embedded_ipv4(address) or address
        # Local-use NAT64 prefixes may be /48…/96: refuse any embedding that lands on a metadata address.
        if address in _NAT64_LOCAL:
            for candidate in _rfc6052_candidates(address):
                if candidate in _METADATA_ADDRESSES:
                    return _Verdict(address, candidate, _metadata_label(candidate), True)
    if judged in _METADATA_ADDRESSES:
        return _Verdict(address, judged, _metadata_label(judged), True)
    label = _special_label(judged)
    return None if label is None else _Verdict(address, judged, label, False)


def _metadata_label(address: IPAddress) -> str:
    return f"{_METADATA_ADDRESSES[address]}, a cloud metadata endpoint that is never accepted"


def _special_label(address: IPAddress) -> str | None:
    if isinstance(address, IPv4Address):
        for net4, label in _V4_SPECIAL:
            if address in net4:
                return label
    else:
        for net6, label in _V6_SPECIAL:
            if address in net6:
                return label
        if address not in _V6_GLOBAL_UNICAST:
            return "a reserved address"
    # Whatever the tables above miss but Python knows about.
    return None if address.is_global else "not a globally routable address"


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one really leads to: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    NAT64 (64:ff9b::a.b.c.d) or 6to4 (2002:AABB:CCDD::)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_WELL_KNOWN or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _rfc6052_candidates(address: IPv6Address) -> list[IPv4Address]:
    """The IPv4 address under each RFC 6052 prefix length that fits inside 64:ff9b:1::/48 (bits 64–71,
    the "u" octet, are skipped)."""
    b = address.packed
    return [
        IPv4Address(b[6:8] + b[9:11]),  # /48
        IPv4Address(b[7:8] + b[9:12]),  # /56
        IPv4Address(b[9:13]),  # /64
        IPv4Address(b[12:16]),  # /96
    ]
