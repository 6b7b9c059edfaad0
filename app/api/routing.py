"""`StrictRoute`, the route class of every API router: how requests are read before FastAPI validates them.

- HEAD is served wherever GET is, as Starlette's own `Route` does (FastAPI's `APIRoute` answers it 405):
  the GET handler runs with `scope["method"] == "HEAD"`, so `FileResponse` and sse-starlette send headers
  only, uvicorn drops any other body, and an endpoint can skip work a HEAD does not need (the S3 stream of
  `/content`). HEAD stays out of `methods`, which OpenAPI documents: it is GET's, not an operation. A
  405's `Allow` names it too.
- Routes that take the caller (`app.api.auth.principal`) authenticate before the body is read: FastAPI
  reads and parses the body before it resolves dependencies, so without this an unauthenticated client
  could make the gateway read 32 MiB and parse it, and learn from a 400 that it reached the parser.
- JSON bodies are parsed by `parse_json`, which refuses what the standard parser lets through or fails on
  with an unhandled error: nesting deeper than `MAX_JSON_DEPTH` (stdlib `json` raises RecursionError near
  depth 1000, which FastAPI answers with a generic 400), more than `MAX_JSON_VALUES` values (a 32 MiB
  `[0,0,0,…]` would become hundreds of MB of Python objects), `NaN`/`Infinity` (not JSON), integers too
  long to convert, bytes that are not UTF-8, and escapes of unpaired surrogates such as `\\uD800` (not
  text: they cannot be stored or written back as UTF-8; RFC 7493 refuses them too). Each is a
  `json.JSONDecodeError`, which FastAPI turns into the same `400 invalid_json` problem as any malformed
  body, with the reason in `detail`. So are numbers too large for a float (`1e400`): the standard parser
  makes them `inf`, which would be stored as `null`.
- A route that documents a `multipart/form-data` body (`forms.multipart_body`) also takes its body as
  form fields and files: read here, after authentication, into the JSON body they stand for
  (`forms.form_body`), which FastAPI validates like any JSON body; a form that cannot be read (no
  boundary, broken parts, more files than the route takes) is a `400 invalid_form`.
- Unknown query parameters are refused with 422 naming the parameter, as unknown body fields are
  (`extra="forbid"` on the body models): a typo (`?stauts=queued`) never silently widens an answer.
  Headers are not checked: proxies and clients add their own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from app.api.auth import authenticate, principal
from app.api.forms import MAX_FIELDS, MAX_PART_BYTES, file_fields, form_body, is_form
from app.errors import BadRequest

#: Deeper JSON is refused; the deepest body the API defines nests 3 levels (metadata may nest up to 8).
MAX_JSON_DEPTH = 32
#: An upper bound on the values a body may hold, counted cheaply as `{`, `[` and `,` bytes (also those in
#: strings): a valid job holds at most a few tens of thousands (16 KB of metadata, a 1500-char prompt).
MAX_JSON_VALUES = 100_000

#: A `\\uD800`–`\\uDFFF` escape: only then can a parsed string hold a surrogate (raw bytes are UTF-8).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _invalid(reason: str) -> json.JSONDecodeError:
    return json.JSONDecodeError(reason, "", 0)


def _refuse_constant(name: str) -> Any:
    raise _invalid(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _invalid(f"{text[:40]} is too large for a number")
    return value


def parse_json(body: bytes) -> Any:
    """Parse a request body as strict JSON; every refusal is a `json.JSONDecodeError`."""
    if body.count(b"{") + body.count(b"[") + body.count(b",") > MAX_JSON_VALUES:
        raise _invalid(f"more than {MAX_JSON_VALUES} values")
    try:
        value = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise _invalid(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise _invalid("the body is not UTF-8") from None
    except ValueError:  # an integer beyond int()'s digit limit (4300)
        raise _invalid("a number has too many digits") from None
    _check_tree(value, strings=_SURROGATE_ESCAPE.search(body) is not None)
    return value


def _check_tree(value: Any, *, strings: bool) -> None:
    """Depth, and with `strings` that every string and key is Unicode text. Iterative: a recursive walk
    would itself hit the recursion limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if strings:
                _check_text(item)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _invalid(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            if strings:
                for key in item:
                    _check_text(key)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("a string holds an unpaired surrogate (\\uD800-\\uDFFF)") from None


def query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares, its dependencies' included (and a query model's fields)."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        for field in current.query_params:
            model = field.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):
                names.update(f.alias or name for name, f in model.model_fields.items())
            else:
                names.add(field.alias)
        stack.extend(current.dependencies)
    return names


def depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    """Whether `call` is among the route's dependencies, directly or through another one."""
    stack = [dependant]
    while stack:
        current = stack.pop()
        if current.call is call:
            return True
        stack.extend(current.dependencies)
    return False


def served_methods(methods: Collection[str]) -> set[str]:
    """What a route answers: its methods, and HEAD wherever it has GET."""
    return {*methods, "HEAD"} if "GET" in methods else set(methods)


#: Set in the scope while a HEAD passes FastAPI's method check as GET (see `StrictRoute.handle`).
_HEAD_AS_GET = "wan_gateway.head_as_get"


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


def _as_json_request(request: Request, body: dict[str, Any]) -> StrictJSONRequest:
    """`request` as if its body had been `body` in JSON: FastAPI reads and validates it as any JSON body."""
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
    scope = {**request.scope, "headers": [*headers, (b"content-type", b"application/json")]}
    converted = StrictJSONRequest(scope, request.receive)
    converted._body = b"{}"  # read already: FastAPI only needs to see that there was one
    converted._json = body
    return converted


class StrictRoute(APIRoute):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.PARTIAL and scope["method"] == "HEAD" and "GET" in (self.methods or ()):
            match = Match.FULL
        return match, child_scope

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.methods:
            served = served_methods(self.methods)
            if scope["method"] not in served:
                raise HTTPException(status_code=405, headers={"Allow": ", ".join(sorted(served))})
            if scope["method"] == "HEAD" and "HEAD" not in self.methods:
                # FastAPI's own check refuses a method not in `methods`: the HEAD passes it as GET, and
                # the handler below turns it back into HEAD before anything else reads the method.
                scope["method"] = "GET"
                scope[_HEAD_AS_GET] = True
        await super().handle(scope, receive, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        declared = query_names(self.dependant)
        authenticates = depends_on(self.dependant, principal)
        files = file_fields(self.openapi_extra)
        model = self.body_field.field_info.annotation if self.body_field is not None else None
        takes_forms = files is not None and isinstance(model, type) and issubclass(model, BaseModel)

        async def strict_handler(request: Request) -> Response:
            if request.scope.pop(_HEAD_AS_GET, False):
                request.scope["method"] = "HEAD"
            if authenticates:
                # From the headers alone, before FastAPI reads the body: a 401 never waits for one.
                request.state.principal = await authenticate(request)
            unknown = [name for name in request.query_params if name not in declared]
            if unknown:
                raise RequestValidationError(
                    [
                        {"type": "extra_forbidden", "loc": ("query", name), "msg": "unknown parameter"}
                        for name in dict.fromkeys(unknown)
                    ]
                )
            if takes_forms and is_form(request.headers.get("content-type")):
                assert files is not None and isinstance(model, type) and issubclass(model, BaseModel)
                try:
                    form = await request.form(
                        max_files=len(files), max_fields=MAX_FIELDS, max_part_size=MAX_PART_BYTES
                    )
                except HTTPException as exc:  # Starlette's answer to a body python-multipart cannot read
                    if exc.status_code != 400:
                        raise
                    raise BadRequest(
                        f"the form body cannot be read: {exc.detail}", code="invalid_form"
                    ) from None
                try:
                    body = await form_body(form, model, files, parse_json)
                finally:
                    await form.close()  # the spooled files
                return await handler(_as_json_request(request, body))
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
