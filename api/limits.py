"""Request body limits, enforced while the body streams in (OWASP API4)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from campsync_sync import ERROR_STATUS, ErrorBody, ErrorCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Answer 413 as soon as a body is larger than the limit for its path.

    A declared ``Content-Length`` over the limit is refused before reading anything; a
    chunked body is counted as it arrives.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[str], int],
        code_for: Callable[[str], ErrorCode] = lambda _: ErrorCode.PAYLOAD_TOO_LARGE,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.code_for = code_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.limit_for(path)
        code = self.code_for(path)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = True
            if too_big:
                await _refuse(send, limit, code)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(send, limit, code)


async def _refuse(send: Send, limit: int, code: ErrorCode) -> None:
    body = orjson.dumps(
        ErrorBody.of(
            code,
            "request body too large",
            {"limit_bytes": limit},
        ).model_dump(mode="json")
    )
    await send(
        {
            "type": "http.response.start",
            "status": ERROR_STATUS[code],
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
