"""What counts as one endpoint for fair webhook dispatch: the URL's origin (scheme, host, port).

A slow receiver is a slow server, whatever path it is asked on, so deliveries are capped per origin
rather than per URL: otherwise `https://tarpit.example/1`, `/2`, `/3`… would each get their own share of
the dispatcher's slots. The host is spelled as httpx (the client that sends) connects to it: lowercased,
IDNA-encoded, trailing dot dropped; the default port is made explicit.
"""

from __future__ import annotations

import httpx

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """`scheme://host:port` of `url`; the URL itself (unchanged) if it does not parse."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return url
    host = parsed.raw_host.decode("ascii", "replace").rstrip(".")
    if not host:
        return url
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = parsed.port or DEFAULT_PORTS.get(parsed.scheme, 0)
    return f"{parsed.scheme}://{host}:{port}"
