"""Structured logs and request ids, with no personal data.

A request log line carries the method, the route *template* (``/v1/households/{household_id}``,
never the query string, which can hold a searched name), the status and the duration. Log
records accept only whitelisted extra keys, so a careless ``extra={"name": ...}`` is dropped
rather than written, and ``%s`` arguments are never interpolated.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
import time
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "campsync_request_id", default=None
)

_EXTRA_KEYS: Final = frozenset(
    {
        "method",
        "route",
        "status",
        "duration_ms",
        "exc_type",
        "frames",
        "device_id",
        "batch_id",
        "camp_id",
        "ops",
        "event",
        "code",
        "seq",
        "count",
    }
)
_INBOUND_ID = re.compile(r"\A[A-Za-z0-9._-]{8,64}\Z")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            # The format string only: arguments are never rendered, they may hold values.
            "msg": str(record.msg),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key in _EXTRA_KEYS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={record.__dict__[key]}" for key in sorted(_EXTRA_KEYS) if key in record.__dict__
        )
        request_id = request_id_var.get()
        prefix = f"[{request_id}] " if request_id else ""
        return f"{record.levelname:<7} {record.name}: {prefix}{record.msg} {extras}".rstrip()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("campsync")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # uvicorn's access log prints query strings (a name search, say): we log requests
    # ourselves, without them.
    logging.getLogger("uvicorn.access").disabled = True


access_log = logging.getLogger("campsync.access")


class RequestContextMiddleware:
    """Give every request an id (``X-Request-ID``) and log one line when it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbound = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = inbound if _INBOUND_ID.match(inbound) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            access_log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "route": getattr(route, "path", "<unmatched>"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            request_id_var.reset(token)
