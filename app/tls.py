"""The TLS context every outgoing HTTP client of the gateway uses (`verify=tls.client_context(...)`).

httpx builds a new `ssl.SSLContext` for each client it creates (and one more per proxy mount), and each
loads the whole CA bundle: about 50 ms a client. The gateway and its tests create several clients per
gateway, so one context per trust source is built once and shared; an `SSLContext` is safe to share
between clients and connections (httpcore only sets the same ALPN protocols on it per connection).

The trust is exactly what httpx 0.28 uses for `verify=True`: `SSL_CERT_FILE`, else `SSL_CERT_DIR` from
the environment when the client reads it (`trust_env=True`, httpx's default), else certifi's bundle.
The environment is read on every call, so a changed variable gets its own context.
"""

from __future__ import annotations

import functools
import os
import ssl

import certifi


def client_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """The shared context for a client built with this `trust_env` (pass the client's own value)."""
    if trust_env and os.environ.get("SSL_CERT_FILE"):
        return _context(cafile=os.environ["SSL_CERT_FILE"], capath=None)
    if trust_env and os.environ.get("SSL_CERT_DIR"):
        return _context(cafile=None, capath=os.environ["SSL_CERT_DIR"])
    return _context(cafile=certifi.where(), capath=None)


@functools.cache
def _context(*, cafile: str | None, capath: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile, capath=capath)
