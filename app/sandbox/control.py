"""The test-control API under /_sandbox/ (not part of DashScope): fault rules, counters and accounts.

It takes the same API keys as the DashScope routes (any account's, a revoked one's too), so nothing that
merely reaches the port can change the sandbox's behaviour.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.sandbox.api import emulator_of
from app.sandbox.errors import invalid, new_request_id
from app.sandbox.faults import FaultRule, parse_faults, rules_from_json


def _rules_in(payload: Any) -> list[FaultRule]:
    """`"spec"`, `{"spec": "..."}`, one rule object, a list of either, or `{"rules": [...]}`."""
    if isinstance(payload, str):
        return parse_faults(payload)
    if isinstance(payload, dict) and "rules" in payload:
        payload = payload["rules"]
    items = payload if isinstance(payload, list) else [payload]
    rules: list[FaultRule] = []
    for item in items:
        if isinstance(item, str):
            rules += parse_faults(item)
        elif isinstance(item, dict):
            rules += rules_from_json(item)
        else:
            raise ValueError("a fault rule is a grammar string or an object")
    return rules


def _rules_body(request: Request, **extra: Any) -> JSONResponse:
    faults = emulator_of(request).faults
    return JSONResponse(
        {"request_id": new_request_id(), **extra, "rules": [r.to_json() for r in faults.rules]}
    )


async def faults_endpoint(request: Request) -> JSONResponse:
    emulator = emulator_of(request)
    emulator.authenticate(request.headers.get("authorization"), control=True)
    if request.method == "DELETE":
        emulator.faults.clear()
    elif request.method == "POST":
        try:
            payload = json.loads(await request.body())
            rules = _rules_in(payload)
        except (ValueError, TypeError) as exc:
            raise invalid(f"fault rules are invalid: {exc}") from None
        replace = isinstance(payload, dict) and bool(payload.get("replace"))
        added = emulator.faults.set(*rules) if replace else emulator.faults.add(*rules)
        return _rules_body(request, added=[rule.to_json() for rule in added])
    return _rules_body(request)


async def stats_endpoint(request: Request) -> JSONResponse:
    emulator = emulator_of(request)
    emulator.authenticate(request.headers.get("authorization"), control=True)
    if request.method == "DELETE":
        emulator.stats.reset()
    accounts = await emulator.account_stats()
    return JSONResponse({"request_id": new_request_id(), **emulator.stats.snapshot(), **accounts})


async def accounts_endpoint(request: Request) -> JSONResponse:
    """GET: the accounts; POST `{"account": "2", "revoked": true}`: refuse (or accept again) its key."""
    emulator = emulator_of(request)
    emulator.authenticate(request.headers.get("authorization"), control=True)
    if request.method == "POST":
        try:
            payload = json.loads(await request.body())
        except ValueError:
            raise invalid("the body is invalid, it must be a JSON object.") from None
        names = {account.name for account in emulator.accounts}
        if not isinstance(payload, dict) or payload.get("account") not in names:
            raise invalid(f"account is invalid, it must be one of {sorted(names, key=int)}.")
        revoked = payload.get("revoked")
        if not isinstance(revoked, bool):
            raise invalid("revoked is invalid, it must be true or false.")
        (emulator.revoked.add if revoked else emulator.revoked.discard)(payload["account"])
    rows = [
        {
            "account": account.name,
            "api_key_id": account.api_key_id,
            "revoked": account.name in emulator.revoked,
        }
        for account in emulator.accounts
    ]
    return JSONResponse({"request_id": new_request_id(), "accounts": rows})


ROUTES = [
    Route("/_sandbox/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
    Route("/_sandbox/stats", stats_endpoint, methods=["GET", "DELETE"]),
    Route("/_sandbox/accounts", accounts_endpoint, methods=["GET", "POST"]),
]
