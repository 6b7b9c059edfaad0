"""What every client command shares: the `--url` / `--key` options (and their environment variables), the
HTTP client built from them, the exit codes, and how a refused request is told to the user.

A gateway's error is RFC 9457 problem+json with a machine `code` (and `field` for a 422); it is printed as
`wan-gateway CMD: 422 validation_error: duration: … (field: duration)` on stderr, the command then exits
with `EXIT_REFUSED`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "WAN_GATEWAY_URL"
KEY_ENV = "WAN_GATEWAY_KEY"

#: The job succeeded (and, when waiting, its video was saved).
EXIT_OK = 0
#: The job ended failed or canceled (its error is printed), or has no video to download.
EXIT_JOB_FAILED = 1
#: The command line was wrong (argparse's own code), e.g. an image file that does not exist.
EXIT_USAGE = 2
#: The gateway refused a request (4xx/5xx: the problem's status, code and detail are printed) or could not
#: be reached, or a download did not complete.
EXIT_REFUSED = 3
#: Interrupted (Ctrl-C) while waiting: the job goes on on the gateway.
EXIT_INTERRUPTED = 130

#: Connect and write quickly; a read may wait (a long poll, an SSE stream between keep-alive comments).
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """`--url` and `--key`, the same on every client command."""
    parser.add_argument("--url", default=None, help=f"the gateway (default ${URL_ENV}, else {DEFAULT_URL})")
    parser.add_argument("--key", default=None, help=f"a client key (default ${KEY_ENV})")


def gateway_url(args: argparse.Namespace) -> str:
    url: str = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    return url.rstrip("/")


def auth_headers(args: argparse.Namespace) -> dict[str, str]:
    key = args.key or os.environ.get(KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


def client(args: argparse.Namespace) -> httpx.Client:
    """An HTTP client for the gateway of `args`, sending the key on every request (redirects followed: a
    presigned S3 URL gets no `Authorization`, httpx drops it when the origin changes)."""
    return httpx.Client(
        base_url=gateway_url(args),
        headers={"User-Agent": f"wan-gateway-cli/{version()}", **auth_headers(args)},
        timeout=TIMEOUT,
        follow_redirects=True,
    )


def version() -> str:
    """The installed package's version (its metadata, not a constant kept by hand)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("wan-gateway")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class GatewayError(Exception):
    """A request the gateway refused, or one that never got an answer; `str()` is the line to print."""


def describe(response: httpx.Response) -> str:
    """A refused request in one line: status, the problem's `code`, its detail (a budget's or a quota's
    figures are in it), the offending field(s)."""
    try:
        problem: Any = response.json()
    except ValueError:
        text = " ".join(response.text.split())[:200]
        return f"{response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")
    if not isinstance(problem, dict):
        return f"{response.status_code}: {str(problem)[:200]}"
    code = problem.get("code") or problem.get("title") or response.reason_phrase
    line = f"{response.status_code} {code}: {problem.get('detail') or problem.get('title') or ''}".rstrip()
    errors = [e.get("field") for e in problem.get("errors") or [] if isinstance(e, dict)]
    fields = [str(f) for f in errors if f] or ([str(problem["field"])] if problem.get("field") else [])
    if fields:
        line += f" (field: {', '.join(dict.fromkeys(fields))})"
    return line


def checked(response: httpx.Response, *expected: int) -> httpx.Response:
    """`response` if its status is one of `expected` (default: any 2xx), else a `GatewayError`."""
    ok = response.status_code in expected if expected else response.is_success
    if not ok:
        raise GatewayError(describe(response))
    return response


def unreachable(url: str, exc: Exception) -> GatewayError:
    return GatewayError(f"cannot reach {url}: {str(exc) or type(exc).__name__}")


def fail(command: str, message: str, code: int) -> NoReturn:
    print(f"wan-gateway {command}: {message}", file=sys.stderr)
    raise SystemExit(code)
