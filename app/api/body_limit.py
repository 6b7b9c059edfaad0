"""`BodySizeLimit`: refuse a request body larger than MAX_REQUEST_BYTES with `413`, without reading it, and
one that stalls for BODY_TIMEOUT_S with `408`.

A pure ASGI middleware (nothing buffered, nothing read ahead of the app):

- a `Content-Length` above the cap is answered at once: the app never runs and not one byte of the body is
  read (a client that sent `Expect: 100-continue` is never told to send it);
- a body without `Content-Length` (chunked) is counted as the app reads it. The read that passes the cap
  raises inside the app; whatever the app makes of that (FastAPI would call it a parse error) is discarded
  and the 413 is sent in its place, so the client never gets half an answer or a wrong one. Should the app
  have started its answer before reading past the cap (no route of ours does), the connection is dropped
  rather than finishing an answer built on a truncated body.

A body that stops arriving (the slow-body variant of slowloris: headers sent, then a byte now and then, or
nothing) holds a socket and a task for as long as the client likes. While the app waits for the next
piece of an unfinished body, each wait is bounded by `idle_timeout_s`; when it passes, the app's answer
is discarded the same way and `408` (`code=request_timeout`, `Connection: close`: the rest of the body
will never be read) is sent instead. The head has its own bound (`serving.py`, HEADER_TIMEOUT_S). Once
the body is complete, `receive` is not timed: streaming answers wait on it for the client's disconnect.

The 413 is `application/problem+json` (`code=request_too_large`, `limit` in bytes), or, under the
prefix of an error dialect (`errors.render_error`: `/v1/videos`), that API's envelope. It does not ask for
`Connection: close`: closing a socket with unread input makes the kernel send a reset, which can destroy
the 413 before a client still uploading reads it. The server (uvicorn) knows the body's framing and
discards whatever of it still arrives, so the connection stays usable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ErrorInfo, ErrorRenderer, render_error


class BodyTooLarge(Exception):
    """Raised to the app by `receive` once the body has passed the cap."""


class BodyStalled(Exception):
    """Raised to the app by `receive` when the next piece of the body did not come in time."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses such a request itself; count the body anyway
    return None


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        idle_timeout_s: float,
        dialects: Mapping[str, ErrorRenderer] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s
        #: The error dialects of `errors.install_handlers` (`/v1/videos` answers in OpenAI's envelope).
        self.dialects = dict(dialects or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return

        received = 0
        refusal: int | None = None  # 413 or 408: the app's own answer is not sent
        started = False  # the app's answer had begun before that
        complete = False  # the whole body has arrived (or the client left)

        async def counted_receive() -> Message:
            nonlocal received, refusal, complete
            if refusal == 413:
                raise BodyTooLarge
            if refusal == 408:
                raise BodyStalled
            if complete:
                return await receive()  # waiting for a disconnect is not a body read
            try:
                message = await asyncio.wait_for(receive(), self.idle_timeout_s)
            except TimeoutError:
                refusal = 408
                raise BodyStalled from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    refusal = 413
                    raise BodyTooLarge
            else:
                complete = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
        if refusal == 413:
            if started:
                raise RuntimeError("the request body passed MAX_REQUEST_BYTES after the answer began")
            await self._refuse(scope, send)
        elif refusal == 408:
            if started:
                raise RuntimeError("the request body stalled after the answer began")
            await self._stalled(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = ErrorInfo(
            413,
            "request_too_large",
            "Request too large",
            f"the request body is larger than {self.max_bytes} bytes (MAX_REQUEST_BYTES)",
            extra={"limit": self.max_bytes},
        )
        await self._answer(render_error(Request(scope), error, self.dialects), scope, send)

    async def _stalled(self, scope: Scope, send: Send) -> None:
        error = ErrorInfo(
            408,
            "request_timeout",
            "Request timeout",
            f"the request body stopped arriving for {self.idle_timeout_s:g} s (BODY_TIMEOUT_S)",
            headers={"Connection": "close"},
        )
        await self._answer(render_error(Request(scope), error, self.dialects), scope, send)

    @staticmethod
    async def _answer(response: Response, scope: Scope, send: Send) -> None:
        async def no_receive() -> Message:  # the body is never read
            return {"type": "http.disconnect"}

        await response(scope, no_receive, send)
