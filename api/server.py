"""The HTTP server: uvicorn with limits on what a client may send and how slowly.

uvicorn's default parser (httptools) takes a header of any size (a 128 MB header froze every
client for 18 s in issue 14), and neither parser times out a client that sends its headers or
its body a byte at a time. The server therefore speaks HTTP/1.1 through h11, whose
``max_incomplete_event_size`` bounds the request line and headers together, and through the
protocol below, which closes a connection whose headers or body arrive too slowly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from api.config import Settings, get_settings

_PROTOCOL = "api.server:TimedH11Protocol"
_TOO_LARGE_TEXT = b"request line and headers too large"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: " + str(len(_TOO_LARGE_TEXT)).encode() + b"\r\n\r\n" + _TOO_LARGE_TEXT
)

_HEALTH_REQUEST = b"GET /healthz HTTP/1.1\r\n"
_HEALTH_BODY = b'{"status":"ok"}'
_HEALTH_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"x-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\n"
    b"content-length: " + str(len(_HEALTH_BODY)).encode() + b"\r\n"
)


class TimedH11Protocol(H11Protocol):
    """h11 with two more timeouts: for the request line and headers, and for the body.

    A new connection, or a kept one whose next request has begun, is closed when the request's
    headers have not all arrived ``header_timeout`` seconds later; a request whose body has not
    all arrived ``body_timeout`` seconds after its headers is cut off, and the app sees the
    client disconnect. An idle kept connection is uvicorn's keep-alive timeout's business.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()  # each worker process reads the same environment
        self.header_timeout = settings.header_timeout_seconds
        self.body_timeout = settings.body_timeout_seconds
        self.max_header_bytes = settings.max_header_bytes
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, check: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, check, self.cycle)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # h11 bounds only a request line and headers that are still incomplete when it
        # looks: a whole 1 MB header that arrives in one read passes. Here the headers must
        # end within the limit, however the bytes arrive.
        if self.conn.their_state is h11.IDLE:
            if not self._headers_fit(data):
                self._disarm()
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
            if self._health_answered(data):
                return
            if self._deadline is None:  # the first bytes of a request on a kept connection
                self._arm(self.header_timeout, self._headers_late)
        super().data_received(data)

    def _health_answered(self, data: bytes) -> bool:
        """Answer a plain ``GET /healthz`` here, before it joins the event loop's queue.

        A crowd of a thousand arriving at once is parsed and answered one by one, and a
        liveness probe among them waited its turn (220-290 ms); here it is answered as soon as
        its bytes are read. Anything but one whole, bodiless request goes the usual way.
        """
        if not data.startswith(_HEALTH_REQUEST) or not data.endswith(b"\r\n\r\n"):
            return False
        lowered = data.lower()
        if (
            data.count(b"\r\n\r\n") != 1
            or self.conn.trailing_data[0]
            or b"\r\ncontent-length:" in lowered
            or b"\r\ntransfer-encoding:" in lowered
        ):
            return False
        close = b"\r\nconnection: close" in lowered
        self._disarm()  # the headers are all here; the connection is idle again after this
        self._unset_keepalive_if_required()
        self.server_state.total_requests += 1
        self.transport.write(
            _HEALTH_HEAD + (b"connection: close\r\n" if close else b"") + b"\r\n" + _HEALTH_BODY
        )
        if close:
            self.transport.close()
        else:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
        return True

    def _headers_fit(self, data: bytes) -> bool:
        pending = self.conn.trailing_data[0]
        limit = self.max_header_bytes + 4
        if len(pending) + len(data) <= limit:
            return True
        return b"\r\n\r\n" in (bytes(pending[:limit]) + data[:limit])[:limit]

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers are complete: now its body
            # A second's grace: a route that reads its body under the same timeout (a push)
            # answers 503 with Retry-After first, which tells a tablet more than a cut.
            self._arm(self.body_timeout + 1, self._body_late)

    def on_response_complete(self) -> None:
        # Between requests the connection is idle, and uvicorn's keep-alive timeout closes
        # it; the next request's headers are timed from its first byte (data_received).
        self._disarm()
        super().on_response_complete()

    def _headers_late(self, armed: object) -> None:
        waiting = self.cycle is None or self.cycle.response_complete
        if self.cycle is armed and waiting and not self.transport.is_closing():
            self.transport.close()

    def _body_late(self, armed: object) -> None:
        cycle = self.cycle
        if cycle is armed and cycle is not None and cycle.more_body and not cycle.response_complete:
            self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The options uvicorn runs with: every wire limit, from the settings."""
    proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    return {
        "factory": True,
        "http": _PROTOCOL,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": settings.max_connections,
        # X-Forwarded-For is believed only from the proxies named; by default uvicorn would
        # believe it from 127.0.0.1, so anyone on the machine could pick their address.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or [],
        "server_header": False,
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 10,
    }


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """Run the server until it is stopped."""
    uvicorn.run(
        "api.main:create_app", host=host, port=port, workers=workers, **uvicorn_options(settings)
    )
