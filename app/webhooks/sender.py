"""One webhook POST to an address vetted against SSRF, pinned so DNS cannot change under it.

Redirects are not followed (a 3xx is a failed attempt). The answer is read only up to 1 KB. Each send
uses its own connection: httpx pools TLS connections by address, not by SNI name, so two https hosts
behind one IP must never share one (the SSL context, the costly part, is shared).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from app.netguard import VettedURL
from app.retry import parse_retry_after
from app.telemetry import tracing
from app.tls import client_context

RESPONSE_EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    retry_after: float | None = None
    #: No answer came in time (else, without a status code, the connection failed).
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._ssl = client_context()  # as httpx.create_ssl_context(): the environment's CA settings
        self._transport = transport  # tests may inject one

    async def send(
        self, target: VettedURL, headers: dict[str, str], body: str, timeout_s: float
    ) -> SendResult:
        # trust_env off: a proxy from the environment must not carry webhooks past the SSRF guard.
        async with httpx.AsyncClient(
            verify=self._ssl, trust_env=False, follow_redirects=False, transport=self._transport
        ) as client:
            return await _send(tracing.instrument_client(client), target, headers, body, timeout_s)


async def _send(
    client: httpx.AsyncClient, target: VettedURL, headers: dict[str, str], body: str, timeout_s: float
) -> SendResult:
    url, pin_headers, extensions = target.pinned()
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    request = client.build_request(
        "POST",
        url,
        content=body.encode(),
        headers={**headers, **pin_headers, "content-type": "application/json"},
        extensions={**extensions, "timeout": httpx.Timeout(timeout_s).as_dict()},
    )
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
    except httpx.TimeoutException:
        return SendResult(None, elapsed(), f"no answer within {timeout_s:g} s", None, timed_out=True)
    except httpx.TransportError as exc:
        return SendResult(None, elapsed(), f"{type(exc).__name__}: {exc}".strip(), None)
    try:
        excerpt = b""
        async for chunk in response.aiter_raw():
            excerpt += chunk
            if len(excerpt) >= RESPONSE_EXCERPT_BYTES:
                break
    except httpx.HTTPError:
        pass  # the status is what counts; a broken body is just not recorded
    finally:
        await response.aclose()
    status = response.status_code
    text = excerpt[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace") or None
    error = None
    if 300 <= status < 400:
        error = f"answered {status} (redirects are not followed)"
    elif not 200 <= status < 300:
        error = f"answered {status}"
    retry_after = parse_retry_after(response.headers) if status in (429, 503) else None
    return SendResult(status, elapsed(), error, text, retry_after)
