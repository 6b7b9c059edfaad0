"""The sandbox's outer ASGI layer: trailing-slash tolerance, request/response counters, request faults.

Request faults act here, before authentication and routing, as a proxy in front of the service would.
`create_after` faults let the create reach the handler (so the task exists) and then replace its 200
answer, which is the ambiguous failure a gateway must reconcile through the task list.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sandbox.errors import oss_error, status_error
from app.sandbox.faults import FaultRule, FaultSet
from app.sandbox.stats import SandboxStats

_OPERATIONS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"/api/v1/services/aigc/[^/]+/video-synthesis"), "create"),
    ("GET", re.compile(r"/api/v1/tasks"), "list"),
    ("GET", re.compile(r"/api/v1/tasks/[^/]+"), "get"),
    ("POST", re.compile(r"/api/v1/tasks/[^/]+/cancel"), "cancel"),
    ("GET", re.compile(r"/api/v1/uploads"), "policy"),
    ("POST", re.compile(r"/oss"), "upload"),
    ("GET", re.compile(r"/files/[^/]+"), "download"),
    ("HEAD", re.compile(r"/files/[^/]+"), "download"),
)


#: Where the edge leaves a create's arrival time in the request state.
ARRIVED_AT = "sandbox_arrived_at"


def operation_of(method: str, path: str) -> str | None:
    for op_method, pattern, name in _OPERATIONS:
        if method == op_method and pattern.fullmatch(path):
            return name
    return None


class SandboxEdge:
    def __init__(self, app: ASGIApp, *, faults: FaultSet, stats: SandboxStats) -> None:
        self.app = app
        self.faults = faults
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
            scope = {**scope, "path": path, "raw_path": path.encode()}
        op = operation_of(scope["method"], path)

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stats.responses[message["status"]] += 1
            await send(message)

        if op is None:
            await self.app(scope, receive, counting_send)
            return
        self.stats.requests[op] += 1

        rule = self.faults.pick(op)
        if rule is not None:
            self.stats.injected[rule.name] += 1
            if rule.action == "slow":
                await asyncio.sleep(rule.delay_s)
            else:
                await self._answer(rule, op, scope, receive, counting_send)
                return
        if op != "create":
            await self.app(scope, receive, counting_send)
            return

        # The service counts a create against its RPS when the request reaches it, not when the handler
        # gets round to it (reading and inspecting the body takes a variable while).
        scope.setdefault("state", {})[ARRIVED_AT] = time.time()
        # Hold the create's answer until we know whether a create_after fault replaces it.
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        after = self.faults.pick("create_after") if held and held[0].get("status") == 200 else None
        if after is not None:
            self.stats.injected[after.name] += 1
            if after.action == "slow":
                await asyncio.sleep(after.delay_s)
            else:
                # A service failing after it created the task still names the request it served.
                request_id = _request_id(held)
                await self._answer(after, op, scope, receive, counting_send, request_id=request_id)
                return
        for message in held:
            await counting_send(message)

    async def _answer(
        self,
        rule: FaultRule,
        op: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        request_id: str | None = None,
    ) -> None:
        if rule.action == "drop":
            # Headers promise a body that never comes; the server then closes the connection, so the
            # client sees a broken exchange rather than any HTTP answer.
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
            )
            return
        status = rule.status
        assert status is not None
        self.stats.injected_status[status] += 1
        response: Response
        if op == "download" and rule.arg is None and status not in (502, 504):
            response = oss_error(
                status, "InternalError" if status >= 500 else "AccessDenied", "Injected fault."
            )
        else:
            response = status_error(status, rule.arg, request_id)
        await response(scope, receive, send)


def _request_id(messages: list[Message]) -> str | None:
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    try:
        value = json.loads(body).get("request_id")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None
