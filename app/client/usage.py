"""`wan-gateway usage`: `GET /v1/usage` of a running gateway, printed as a table (or its JSON).

`--url` / WAN_GATEWAY_URL (default http://127.0.0.1:8000), `--key` / WAN_GATEWAY_KEY. Exit 0 on 200;
otherwise the problem's status, code and detail on stderr and exit 3 (`common.EXIT_REFUSED`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from app.client.common import (
    EXIT_OK,
    EXIT_REFUSED,
    add_connection_arguments,
    auth_headers,
    describe,
    gateway_url,
)

COLUMNS = ("group", "jobs", "billed_seconds", "amount", "currency")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from", dest="since", metavar="DATE", help="ISO date or date-time, inclusive (default: month start)"
    )
    parser.add_argument(
        "--to", dest="until", metavar="DATE", help="ISO date or date-time, exclusive (default: now)"
    )
    parser.add_argument("--group-by", choices=("day", "model", "key", "tenant"), default="day")
    add_connection_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the answer's JSON")


def run(args: argparse.Namespace) -> int:
    url = gateway_url(args)
    params = {"group_by": args.group_by}
    if args.since:
        params["from"] = args.since
    if args.until:
        params["to"] = args.until
    headers = auth_headers(args)
    try:
        response = httpx.get(f"{url}/v1/usage", params=params, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        print(f"wan-gateway usage: cannot reach {url}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if response.status_code != 200:
        print(f"wan-gateway usage: {describe(response)}", file=sys.stderr)
        return EXIT_REFUSED
    body: dict[str, Any] = response.json()
    print(json.dumps(body, indent=2) if args.json else table(body))
    return EXIT_OK


def table(body: dict[str, Any]) -> str:
    """The rows as aligned columns, under a line naming the window."""
    rows = [["-" if row[c] is None else str(row[c]) for c in COLUMNS] for row in body.get("data", [])]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(COLUMNS)]
    lines = [f"usage from {body.get('from')} to {body.get('to')} by {body.get('group_by')}"]
    lines.append("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip())
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if not rows:
        lines.append("(no finished jobs)")
    return "\n".join(lines)
