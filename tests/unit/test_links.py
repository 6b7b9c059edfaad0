"""`LinkSigner`: expiries rounded up to the hour (one URL per job per hour), the signature bound to job,
variant and expiry, expired links told apart from forged ones."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from app.links import LinkSigner

SECRET = "s" * 32
WEEK = 7 * 24 * 3600


def signer(now: float, secret: str = SECRET) -> LinkSigner:
    return LinkSigner(secret, public_base_url="http://gw.test/", ttl_s=WEEK, clock=lambda: now)


def query(url: str) -> tuple[int, str]:
    values = parse_qs(urlsplit(url).query)
    return int(values["expires"][0]), values["signature"][0]


def test_links_are_stable_within_the_hour_and_bound_to_what_they_sign() -> None:
    start = 1_800_000_000 - 1_800_000_000 % 3600 + 1  # one second past an hour
    url = signer(start).url("job_1")
    assert url.startswith("http://gw.test/v1/links/job_1/video?expires=")
    assert signer(start + 3598).url("job_1") == url  # the same hour: the same URL
    expires, signature = query(url)
    assert expires == start - 1 + WEEK + 3600 and expires % 3600 == 0  # never less than the TTL
    later = signer(start + 3600)  # the next hour: a new URL, and the old one still good
    assert later.url("job_1") != url and later.verify("job_1", "video", expires, signature)
    assert signer(start).problem("job_2", "video", expires, signature) == "link_invalid"
    assert signer(start).problem("job_1", "thumbnail", expires, signature) == "link_invalid"
    assert signer(start).problem("job_1", "video", expires + 1, signature) == "link_invalid"
    assert signer(start, "t" * 32).problem("job_1", "video", expires, signature) == "link_invalid"
    assert signer(start).problem("job_1", "video", expires, "é" + signature) == "link_invalid"
    assert signer(expires).problem("job_1", "video", expires, signature) == "link_expired"
    url_t, when = signer(start).signed("job_1", "thumbnail")
    assert "/job_1/thumbnail?" in url_t and int(when.timestamp()) == expires
