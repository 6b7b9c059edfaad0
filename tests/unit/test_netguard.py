"""The SSRF guard: what vet_url accepts and refuses, and how pinned() aims the request.

DNS is replaced by an injected resolver everywhere except where the real getaddrinfo is the point (names
that cannot resolve, and odd IPv4 spellings, which the system reads without any DNS).
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

import httpx
import pytest

from app import netguard
from app.netguard import UnsafeURL, VettedURL, check_address, vet_url

HINT = "ALLOW_PRIVATE_URLS=true"
PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700::1111"


class FakeDNS:
    """A resolver answering from a table and recording what it was asked."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def answering(*addresses: str) -> FakeDNS:
    return FakeDNS({"hooks.example.com": list(addresses)})


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"the resolver must not be asked about {host}")


async def refusal(url: str, *, allow_private: bool = False, resolver: netguard.Resolver = no_dns) -> str:
    with pytest.raises(UnsafeURL) as info:
        await vet_url(url, allow_private=allow_private, resolver=resolver)
    assert str(info.value) == info.value.reason
    return info.value.reason


# --- public addresses pass ---------------------------------------------------------------------------


async def test_public_name_passes_with_every_address_checked() -> None:
    dns = answering(PUBLIC_V4, PUBLIC_V6, PUBLIC_V4)
    vetted = await vet_url("https://hooks.example.com/cb?x=1", allow_private=False, resolver=dns)
    assert vetted == VettedURL(
        url="https://hooks.example.com/cb?x=1",
        scheme="https",
        host="hooks.example.com",
        port=443,
        addresses=(IPv4Address(PUBLIC_V4), IPv6Address(PUBLIC_V6)),  # duplicates dropped, order kept
    )
    assert dns.calls == [("hooks.example.com", 443)]


@pytest.mark.parametrize("url", [f"http://{PUBLIC_V4}/", f"http://[{PUBLIC_V6}]:8080/", "http://8.8.8.8"])
async def test_public_ip_literals_pass_without_dns(url: str) -> None:
    vetted = await vet_url(url, allow_private=False, resolver=no_dns)
    assert len(vetted.addresses) == 1 and vetted.addresses[0].is_global


async def test_host_is_idna_encoded_and_scheme_lowercased() -> None:
    dns = FakeDNS({"xn--bcher-kva.example": [PUBLIC_V4]})
    vetted = await vet_url("HTTPS://Bücher.Example:8443/p", allow_private=False, resolver=dns)
    assert (vetted.scheme, vetted.host, vetted.port) == ("https", "xn--bcher-kva.example", 8443)
    assert dns.calls == [("xn--bcher-kva.example", 8443)]
    assert vetted.url == "HTTPS://Bücher.Example:8443/p"  # as given


def test_vetted_url_is_frozen() -> None:
    vetted = VettedURL("http://a/", "http", "a", 80, (IPv4Address(PUBLIC_V4),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        vetted.host = "b"  # type: ignore[misc]


# --- private and reserved addresses ------------------------------------------------------------------

NON_PUBLIC = [
    ("127.0.0.1", "a loopback address"),
    ("127.45.6.7", "a loopback address"),
    ("10.0.0.5", "a private address"),
    ("172.16.3.4", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.10.20", "a link-local address"),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("100.127.255.254", "a carrier-grade NAT address"),
    ("0.0.0.0", "the unspecified address"),  # noqa: S104 - judged, not bound
    ("0.1.2.3", '"this network"'),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("192.0.0.8", "a reserved address"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("::1", "a loopback address"),
    ("::", "the unspecified address"),
    ("fc00::1", "a private address (unique local)"),
    ("fd12:3456:789a::1", "a private address (unique local)"),
    ("fe80::1", "a link-local address"),
    ("fec0::1", "site-local"),
    ("ff02::1", "a multicast address"),
    ("ff0e::1", "a multicast address"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard-only"),
    ("2001::1", "Teredo"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("4000::1", "a reserved address"),
    ("5f00::1", "a reserved address"),
]


@pytest.mark.parametrize(("address", "label"), NON_PUBLIC)
async def test_non_public_address_is_refused_unless_allowed(address: str, label: str) -> None:
    dns = answering(address)
    reason = await refusal("https://hooks.example.com/cb", resolver=dns)
    assert reason.startswith(f"hooks.example.com resolves to {ip_address(address)}, ")
    assert label in reason and HINT in reason
    vetted = await vet_url("https://hooks.example.com/cb", allow_private=True, resolver=dns)
    assert vetted.addresses == (ip_address(address),)


@pytest.mark.parametrize(("address", "label"), NON_PUBLIC)
def test_check_address_judges_the_same_way(address: str, label: str) -> None:
    with pytest.raises(UnsafeURL, match="ALLOW_PRIVATE_URLS=true") as info:
        check_address(address, allow_private=False)
    assert label in info.value.reason
    check_address(ip_address(address), allow_private=True)


def test_reason_reads_as_a_sentence() -> None:
    with pytest.raises(UnsafeURL) as info:
        check_address(IPv4Address("10.0.0.5"), allow_private=False)
    assert info.value.reason == (
        "10.0.0.5 is a private address; "
        "set ALLOW_PRIVATE_URLS=true to allow loopback, private and other non-public targets"
    )


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, "8.8.8.8", "2001:4860:4860::8888"])
def test_check_address_accepts_public_addresses(address: str) -> None:
    check_address(address, allow_private=False)


def test_check_address_refuses_what_is_not_an_address() -> None:
    with pytest.raises(UnsafeURL, match="not an IP address"):
        check_address("localhost", allow_private=True)


async def test_private_ip_literal_is_refused() -> None:
    reason = await refusal("http://10.0.0.5:8080/hook")
    assert reason.startswith("10.0.0.5 is a private address;") and HINT in reason
    vetted = await vet_url("http://10.0.0.5:8080/hook", allow_private=True, resolver=no_dns)
    assert vetted.addresses == (IPv4Address("10.0.0.5"),)


# --- every address must pass -------------------------------------------------------------------------


@pytest.mark.parametrize("order", [(PUBLIC_V4, "10.0.0.5"), ("10.0.0.5", PUBLIC_V4)])
async def test_one_private_answer_refuses_the_name(order: tuple[str, str]) -> None:
    reason = await refusal("https://hooks.example.com/", resolver=answering(*order))
    assert "resolves to 10.0.0.5, a private address (one of its 2 addresses" in reason
    assert HINT in reason


async def test_a_private_ipv6_answer_among_public_ones_refuses() -> None:
    reason = await refusal("https://hooks.example.com/", resolver=answering(PUBLIC_V4, PUBLIC_V6, "fd00::7"))
    assert "fd00::7, a private address (unique local) (one of its 3 addresses" in reason


async def test_metadata_among_answers_is_refused_even_when_private_is_allowed() -> None:
    reason = await refusal(
        "https://hooks.example.com/", allow_private=True, resolver=answering(PUBLIC_V4, "169.254.169.254")
    )
    assert "resolves to 169.254.169.254" in reason and "never accepted" in reason
    assert HINT not in reason


async def test_metadata_is_reported_ahead_of_a_private_answer() -> None:
    # Suggesting ALLOW_PRIVATE_URLS here would be a false promise: the metadata answer stays refused.
    reason = await refusal("https://hooks.example.com/", resolver=answering("10.0.0.5", "100.100.100.200"))
    assert "100.100.100.200" in reason and "Alibaba Cloud" in reason
    assert HINT not in reason


# --- cloud metadata endpoints ------------------------------------------------------------------------

METADATA = [
    ("169.254.169.254", "AWS, GCP, Azure, Oracle"),
    ("169.254.170.2", "ECS"),
    ("169.254.170.23", "EKS Pod Identity"),
    ("100.100.100.200", "Alibaba Cloud"),
    ("168.63.129.16", "Azure WireServer"),
    ("169.254.0.23", "Tencent"),
    ("192.0.0.192", "Oracle"),
    ("fd00:ec2::254", "AWS instance metadata service (IPv6)"),
    ("fd00:ec2::23", "EKS Pod Identity"),
]


@pytest.mark.parametrize(("address", "who"), METADATA)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_metadata_addresses_are_always_refused(address: str, who: str, allow_private: bool) -> None:
    literal = f"[{address}]" if ":" in address else address
    cases: list[tuple[str, netguard.Resolver]] = [
        (f"http://{literal}/latest/meta-data/", no_dns),
        ("http://x.test/", FakeDNS({"x.test": [address]})),
    ]
    for url, dns in cases:
        reason = await refusal(url, allow_private=allow_private, resolver=dns)
        assert who in reason and "cloud metadata endpoint that is never accepted" in reason
        assert HINT not in reason
    with pytest.raises(UnsafeURL, match="never accepted"):
        check_address(address, allow_private=True)


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:169.254.169.254",  # IPv4-mapped
        "::169.254.169.254",  # IPv4-compatible
        "64:ff9b::169.254.169.254",  # NAT64, well-known prefix
        "2002:a9fe:a9fe::1",  # 6to4
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64, /96
        "64:ff9b:1:a9fe:a9:fe00::",  # local-use NAT64, /48 (the u octet skipped)
    ],
)
async def test_metadata_hidden_in_ipv6_is_always_refused(address: str) -> None:
    reason = await refusal(f"http://[{address}]/", allow_private=True)
    assert "maps to 169.254.169.254" in reason and "never accepted" in reason


@pytest.mark.parametrize(
    "host",
    [
        "metadata",
        "metadata.google.internal",
        "METADATA.Google.Internal",
        "metadata.google.internal.",
        "computemetadata.metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    ],
)
async def test_metadata_names_are_refused_before_resolving(host: str) -> None:
    reason = await refusal(f"http://{host}/computeMetadata/v1/", allow_private=True)
    assert "is a cloud metadata host name and is never accepted" in reason


async def test_names_merely_containing_metadata_are_judged_normally() -> None:
    dns = FakeDNS({"metadata.example.com": [PUBLIC_V4], "mymetadata": [PUBLIC_V4]})
    await vet_url("https://metadata.example.com/", allow_private=False, resolver=dns)
    await vet_url("https://mymetadata/", allow_private=False, resolver=dns)


# --- odd spellings of an address ---------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "2130706433",  # decimal
    "0x7f000001",  # one hex number
    "017700000001",  # one octal number
    "0x7f.1",  # hex, short
    "0x7F.0.0.0x1",  # hex, mixed case
    "127.1",  # short
    "127.0.1",  # short
    "0177.1",  # octal, short
    "127.0.0.1.",  # trailing dot
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_odd_loopback_spellings_are_judged_as_127_0_0_1(host: str) -> None:
    reason = await refusal(f"http://{host}:8080/")
    assert reason.startswith(f"{host.lower()} means 127.0.0.1, a loopback address") and HINT in reason
    vetted = await vet_url(f"http://{host}:8080/", allow_private=True, resolver=no_dns)
    assert vetted.addresses == (IPv4Address("127.0.0.1"),)
    url, headers, _ = vetted.pinned()
    assert url == "http://127.0.0.1:8080/" and headers == {"Host": f"{host.lower()}:8080"}


@pytest.mark.parametrize("host", [h for h in LOOPBACK_SPELLINGS if not h.endswith(".")])
def test_odd_spellings_mean_what_the_system_resolver_connects_to(host: str) -> None:
    """The guard reads these itself; getaddrinfo (no DNS involved) must agree with it."""
    answers = {info[4][0] for info in socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)}
    assert answers == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0", "0.0.0.0"),  # noqa: S104 - judged, not bound
        ("0x0a000005", "10.0.0.5"),
        ("012.5", "10.0.0.5"),
        ("169.254.43518", "169.254.169.254"),
    ],
)
async def test_other_odd_spellings_are_judged_by_their_address(host: str, address: str) -> None:
    reason = await refusal(f"http://{host}/")
    assert reason.startswith(f"{host} means {address}, ")


@pytest.mark.parametrize("host", ["0177.0.0.1", "012.0.0.5", "127.000.000.001", "08.0.0.1", "256.0.0.1"])
async def test_dotted_quads_with_leading_zeros_are_refused_as_invalid(host: str) -> None:
    # httpx's own parser rejects these four-part forms (octal or not, they are ambiguous).
    reason = await refusal(f"http://{host}/", allow_private=True)
    assert reason == f"the URL is not valid: Invalid IPv4 address: '{host}'"


async def test_odd_spelling_of_a_public_address_passes() -> None:
    vetted = await vet_url("http://134744072/", allow_private=False, resolver=no_dns)
    assert vetted.addresses == (IPv4Address("8.8.8.8"),)


@pytest.mark.parametrize("host", ["1.2.3.4.5", "0x100000000", "4294967296", "08.1", "a.0x"])
async def test_invalid_numeric_hosts_are_refused(host: str) -> None:
    reason = await refusal(f"http://{host}/", allow_private=True)
    assert reason == f"{host} looks like an IPv4 address but is not a valid one"


async def test_trailing_dot_names_are_resolved_and_judged() -> None:
    dns = FakeDNS({"localhost.": ["127.0.0.1"]})
    reason = await refusal("http://localhost./", resolver=dns)
    assert reason.startswith("localhost. resolves to 127.0.0.1, a loopback address")
    assert dns.calls == [("localhost.", 80)]


@pytest.mark.parametrize(
    ("host", "embedded", "label"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1", "a loopback address"),
        ("::FFFF:7F00:1", "127.0.0.1", "a loopback address"),
        ("0:0:0:0:0:ffff:10.0.0.5", "10.0.0.5", "a private address"),
        ("::127.0.0.1", "127.0.0.1", "a loopback address"),
        ("::10.1.2.3", "10.1.2.3", "a private address"),
        ("64:ff9b::127.0.0.1", "127.0.0.1", "a loopback address"),
        ("64:ff9b::c0a8:101", "192.168.1.1", "a private address"),
        ("2002:c0a8:101::1", "192.168.1.1", "a private address"),
        ("::ffff:100.64.1.1", "100.64.1.1", "a carrier-grade NAT address"),
    ],
)
async def test_ipv6_forms_are_judged_by_the_ipv4_they_carry(host: str, embedded: str, label: str) -> None:
    reason = await refusal(f"http://[{host}]/")
    assert reason.startswith(f"{ip_address(host)} maps to {embedded}, {label}") and HINT in reason


@pytest.mark.parametrize(
    "address", ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2001:4860:4860::8888"]
)
async def test_ipv6_forms_carrying_a_public_address_pass(address: str) -> None:
    await vet_url(f"http://[{address}]/", allow_private=False, resolver=no_dns)


@pytest.mark.parametrize(
    "url", ["http://[fe80::1%25eth0]/", "http://[fe80::1%eth0]:80/", "http://[::1%251]/"]
)
async def test_ipv6_zone_ids_are_refused(url: str) -> None:
    reason = await refusal(url, allow_private=True)
    assert "IPv6 zone identifiers" in reason


async def test_zone_scoped_answers_are_refused() -> None:
    reason = await refusal(
        "http://hooks.example.com/", allow_private=True, resolver=answering("fe80::1%eth0")
    )
    assert "zone-scoped IPv6 address" in reason


# --- the URL itself ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://hooks.example.com/", "the URL scheme is 'ftp'; only http and https are accepted"),
        ("file:///etc/passwd", "the URL scheme is 'file'; only http and https are accepted"),
        ("gopher://127.0.0.1:6379/_INFO", "the URL scheme is 'gopher'; only http and https are accepted"),
        ("ws://hooks.example.com/", "the URL scheme is 'ws'; only http and https are accepted"),
        ("//hooks.example.com/", "the URL scheme is missing; only http and https are accepted"),
        ("hooks.example.com/cb", "the URL scheme is missing; only http and https are accepted"),
        ("http:///cb", "the URL has no host"),
        ("http://:8080/cb", "the URL has no host"),
        ("https:cb", "the URL has no host"),
    ],
)
async def test_scheme_and_host_are_required(url: str, expected: str) -> None:
    assert await refusal(url, allow_private=True) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://user:secret@hooks.example.com/",
        "http://user@hooks.example.com/",
        "http://:secret@hooks.example.com/",
        "http://@hooks.example.com/",
        "http://hooks.example.com\\@127.0.0.1/",
        "http://hooks.example.com:443@127.0.0.1/",
    ],
)
async def test_userinfo_is_refused_without_echoing_it(url: str) -> None:
    reason = await refusal(url, allow_private=True)
    assert reason == "the URL contains credentials (user:password@), which are not accepted"
    assert "secret" not in reason


async def test_url_length_limit() -> None:
    base = "https://hooks.example.com/"
    longest = base + "a" * (2048 - len(base))
    await vet_url(longest, allow_private=False, resolver=answering(PUBLIC_V4))
    reason = await refusal(longest + "a")
    assert reason == "the URL is 2049 characters long; at most 2048 are accepted"


@pytest.mark.parametrize("port", [0, 65536, 99999, -1])
async def test_ports_out_of_range_are_refused(port: int) -> None:
    assert await refusal(f"http://hooks.example.com:{port}/") == f"port {port} is out of range (1–65535)"


@pytest.mark.parametrize(("port", "expected"), [("1", 1), ("65535", 65535), ("8443", 8443), ("443", 443)])
async def test_ports_in_range_pass(port: str, expected: int) -> None:
    vetted = await vet_url(
        f"https://hooks.example.com:{port}/", allow_private=False, resolver=answering(PUBLIC_V4)
    )
    assert vetted.port == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://hooks.example.com:8x/", "the URL is not valid: Invalid port: '8x'"),
        ("http://hooks.example.com/\r\nX-Injected: 1", "the URL is not valid: Invalid non-printable ASCII"),
        ("http://１２７.０.０.１/", "the URL is not valid: Invalid IDNA hostname"),
        ("http://[v1.x]/", "the URL is not valid: Invalid IPv6 address"),
        ("http://]hooks.example.com/", "the URL is not valid: Invalid IPv6 URL"),
        ("http://hooks[127.0.0.1]/", "the URL is not valid: An IPv4 address cannot be in brackets"),
        ("http://hooks[x]y/", "the URL is not valid: 'x' does not appear to be an IPv4 or IPv6 address"),
        ("http://%31%32%37.0.0.1/", "%31%32%37.0.0.1 is not a valid host name"),
        ("http://hooks example.com/", "hooks%20example.com is not a valid host name"),
    ],
)
async def test_malformed_urls_are_refused(url: str, expected: str) -> None:
    assert (await refusal(url, allow_private=True)).startswith(expected)


# --- resolution --------------------------------------------------------------------------------------


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    reason = await refusal("https://nowhere.example.com/", resolver=FakeDNS())
    assert reason == "nowhere.example.com does not resolve (Name or service not known)"


async def test_the_real_resolver_refuses_a_name_that_cannot_resolve() -> None:
    # .invalid never resolves (RFC 6761), with or without a network.
    with pytest.raises(UnsafeURL, match=r"^hooks\.invalid does not resolve"):
        await vet_url("https://hooks.invalid/cb", allow_private=True)


async def test_the_real_resolver_finds_localhost() -> None:
    with pytest.raises(UnsafeURL, match=r"^localhost resolves to (127\.0\.0\.1|::1), a loopback address"):
        await vet_url("http://localhost:9/", allow_private=False)
    vetted = await vet_url("http://localhost:9/", allow_private=True)
    assert vetted.addresses and all(a.is_loopback for a in vetted.addresses)


async def test_an_empty_answer_is_refused() -> None:
    assert await refusal("http://hooks.example.com/", resolver=answering()) == (
        "hooks.example.com does not resolve to any address"
    )


async def test_an_answer_that_is_not_an_address_is_refused() -> None:
    reason = await refusal(
        "http://hooks.example.com/", allow_private=True, resolver=answering("10.0.0.5", "oops")
    )
    assert reason == "hooks.example.com resolves to 'oops', which is not an IP address"


async def test_a_slow_resolver_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netguard, "RESOLVE_TIMEOUT_S", 0.01)

    async def slow(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(5)
        return [PUBLIC_V4]

    assert await refusal("http://hooks.example.com/", resolver=slow) == (
        "hooks.example.com did not resolve within 0.01 s"
    )


# --- pinned() ----------------------------------------------------------------------------------------


async def pinned(url: str, *addresses: str) -> tuple[str, dict[str, str], dict[str, object]]:
    dns = FakeDNS({httpx.URL(url).raw_host.decode(): list(addresses)})
    return (await vet_url(url, allow_private=False, resolver=dns)).pinned()


async def test_pinned_http() -> None:
    assert await pinned("http://hooks.example.com/a/b?c=d&e=%20", PUBLIC_V4) == (
        f"http://{PUBLIC_V4}/a/b?c=d&e=%20",
        {"Host": "hooks.example.com"},
        {},
    )


async def test_pinned_https_keeps_sni_on_the_original_host() -> None:
    assert await pinned("https://hooks.example.com/cb", PUBLIC_V4) == (
        f"https://{PUBLIC_V4}/cb",
        {"Host": "hooks.example.com"},
        {"sni_hostname": "hooks.example.com"},
    )


async def test_pinned_ipv6_address_gets_brackets() -> None:
    assert await pinned("https://hooks.example.com/cb", PUBLIC_V6, PUBLIC_V4) == (
        f"https://[{PUBLIC_V6}]/cb",
        {"Host": "hooks.example.com"},
        {"sni_hostname": "hooks.example.com"},
    )


async def test_pinned_non_default_port_is_kept_in_url_and_host() -> None:
    assert await pinned("https://hooks.example.com:8443/cb", PUBLIC_V4) == (
        f"https://{PUBLIC_V4}:8443/cb",
        {"Host": "hooks.example.com:8443"},
        {"sni_hostname": "hooks.example.com"},
    )


async def test_pinned_explicit_default_port_is_left_out_as_httpx_would() -> None:
    url, headers, _ = await pinned("https://hooks.example.com:443/cb", PUBLIC_V4)
    assert (url, headers) == (f"https://{PUBLIC_V4}/cb", {"Host": "hooks.example.com"})


async def test_pinned_ipv6_literal_host() -> None:
    vetted = await vet_url(f"https://[{PUBLIC_V6}]:8443/cb", allow_private=False, resolver=no_dns)
    assert vetted.host == PUBLIC_V6
    assert vetted.pinned() == (
        f"https://[{PUBLIC_V6}]:8443/cb",
        {"Host": f"[{PUBLIC_V6}]:8443"},
        {"sni_hostname": PUBLIC_V6},
    )


async def test_pinned_idna_host() -> None:
    assert await pinned("https://Bücher.example/cb", PUBLIC_V4) == (
        f"https://{PUBLIC_V4}/cb",
        {"Host": "xn--bcher-kva.example"},
        {"sni_hostname": "xn--bcher-kva.example"},
    )


async def test_pinned_output_builds_the_intended_httpx_request() -> None:
    url, headers, extensions = await pinned("https://hooks.example.com:8443/cb?x=1", PUBLIC_V4)
    request = httpx.Request("POST", url, headers=headers, extensions=extensions, json={"ok": True})
    assert (request.url.host, request.url.port, request.url.raw_path) == (PUBLIC_V4, 8443, b"/cb?x=1")
    assert request.headers.get_list("host") == ["hooks.example.com:8443"]
    assert request.extensions["sni_hostname"] == "hooks.example.com"
