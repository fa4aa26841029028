"""Transports that misbehave on purpose, around any inner transport."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


class Crash(BaseException):
    """Stands for the process being killed: not an Exception, so nothing catches it."""


Rule = Callable[[httpx.Request], str | None]


@dataclass
class Faulty(httpx.BaseTransport):
    """Applies the first matching rule of ``rules`` to each request, then forgets it.

    Actions: ``drop_request`` (never reaches the server), ``drop_response`` (the server
    handles it, the answer is lost), ``crash_before`` / ``crash_after`` (the process dies
    before sending / after the server handled it), ``status:NNN`` (an error answer),
    ``duplicate`` (the server sees the request twice).
    """

    inner: httpx.BaseTransport
    rules: list[tuple[str, str]] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    def add(self, match: str, action: str, times: int = 1) -> None:
        self.rules += [(match, action)] * times

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        line = f"{request.method} {request.url.path}"
        self.seen.append(line)
        action = None
        for i, (match, act) in enumerate(self.rules):
            if match in line:
                action = act
                del self.rules[i]
                break
        if action == "drop_request":
            raise httpx.ConnectError("dropped", request=request)
        if action == "crash_before":
            raise Crash
        if action is not None and action.startswith("status:"):
            status = int(action.split(":")[1])
            headers = {"Retry-After": "0"} if status in (429, 503) else {}
            return httpx.Response(
                status,
                headers=headers,
                json={"error": {"code": "rate_limited", "message": "busy", "details": None}},
            )
        response = self.inner.handle_request(request)
        if action == "duplicate":
            response.close()
            response = self.inner.handle_request(request)
        if action in ("drop_response", "crash_after"):
            response.read()  # the server finished; only the answer is lost
            response.close()
            if action == "crash_after":
                raise Crash
            raise httpx.ReadError("lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()
