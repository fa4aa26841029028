"""Admission control: each worker works on a bounded number of requests at once.

Without it a crowd of callers takes every thread of the pool, each thread waits for one of
fewer database connections, and the requests holding a connection wait for a thread to run
their next step: nothing moves until SQLAlchemy's pool timeout, and every request then fails
with a 500 (issue 14: 60 concurrent reads, 40 failed after 30 s). Here a request first takes
one of ``limit`` turns; a few may wait for one, briefly; the rest are told at once, with a
``503`` and ``Retry-After``, to come back. A waiting request whose client hangs up is dropped
without being worked on.

Health checks skip the queue (they must answer while the worker is busy), and so do pushes,
which have their own gate (``api.sync.gate``) that waits before their body is read.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Final

import orjson
from campsync_sync import ErrorBody, ErrorCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("campsync.admission")

RETRY_AFTER_SECONDS: Final = 2
"""What a refused caller is told: as the push gate tells tablets. A crowd told two seconds,
and held one to two when it does not listen (below), comes back spread out, and the worker
spends its time on the requests it admitted rather than on refusals (bench/load.py)."""
MAX_TOLD: Final = 10_000
"""Connections remembered as told to come back (the worker holds at most a few thousand)."""


class Admission:
    """Turns to work on requests in one worker (one event loop), with a bounded queue."""

    def __init__(self, limit: int, queued: int, wait_seconds: float) -> None:
        self.limit = limit
        self.queued = queued
        self.wait_seconds = wait_seconds
        self._turns = asyncio.Semaphore(limit)
        self.waiting = 0
        self.abandoned = 0
        self._told: dict[object, float] = {}
        """Connections answered 503, and when (monotonic) they may be answered again."""

    def wait_owed(self, connection: object) -> float:
        """Seconds a connection told to come back has not yet waited (0 when it has)."""
        until = self._told.get(connection)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._told[connection]
        return max(0.0, left)

    def tell_to_wait(self, connection: object) -> None:
        if len(self._told) >= MAX_TOLD:
            now = time.monotonic()
            self._told = {c: t for c, t in self._told.items() if t > now}
            if len(self._told) >= MAX_TOLD:
                self._told.clear()  # bounded memory beats perfect memory
        # Held for half to all of what it was told, so that a crowd refused together does not
        # come back together; never longer, so that a client that waited as told is not held.
        share = random.uniform(0.5, 1)  # noqa: S311 - spreading retries, not a secret
        self._told[connection] = time.monotonic() + RETRY_AFTER_SECONDS * share

    async def take_free_turn(self) -> bool:
        """Take a turn if one is free now; never waits (a free semaphore does not suspend)."""
        if self._turns.locked():
            return False
        await self._turns.acquire()
        return True

    async def wait_turn(self, gone: asyncio.Future[None] | None) -> str:
        """Wait for a turn: ``"admitted"``, ``"full"``, ``"timeout"`` or ``"gone"``."""
        if self.waiting >= self.queued:
            return "full"
        self.waiting += 1
        turn = asyncio.ensure_future(self._turns.acquire())
        waits: set[asyncio.Future[object]] = {turn}  # type: ignore[arg-type]
        if gone is not None:
            waits.add(gone)  # type: ignore[arg-type]
        try:
            await asyncio.wait(waits, timeout=self.wait_seconds, return_when="FIRST_COMPLETED")
        finally:
            self.waiting -= 1
        if not turn.done():
            turn.cancel()
            try:
                await turn
            except asyncio.CancelledError:
                return "gone" if gone is not None and gone.done() else "timeout"
        return "admitted"

    def release(self) -> None:
        self._turns.release()


def _bodyless(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    return b"transfer-encoding" not in headers and headers.get(b"content-length", b"0") == b"0"


class AdmissionMiddleware:
    """Apply :class:`Admission` to every HTTP request but those ``exempt`` names."""

    def __init__(self, app: ASGIApp, admission: Admission, exempt: Callable[[Scope], bool]):
        self.app = app
        self.admission = admission
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope):
            await self.app(scope, receive, send)
            return
        admission = self.admission
        client = scope.get("client")
        connection = tuple(client) if client else None
        if connection is not None and (owed := admission.wait_owed(connection)):
            # A client that asks again on the same connection before its Retry-After has
            # passed waits it out here, asleep: refusing it at once, again and again, would
            # spend the worker's time (and its interpreter lock) on nothing but refusals.
            await asyncio.sleep(owed)
        if await admission.take_free_turn():
            try:
                await self.app(scope, receive, send)
            finally:
                admission.release()
            return
        # Only a request without a body is watched while it waits: reading a body now would
        # hold it in memory for a request that may never run.
        early: list[Message] = []
        watcher = asyncio.ensure_future(_disconnect(receive, early)) if _bodyless(scope) else None
        try:
            outcome = await admission.wait_turn(watcher)
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
        if outcome == "gone":
            admission.abandoned += 1
            return
        if outcome != "admitted":
            if connection is not None:
                admission.tell_to_wait(connection)
            await _busy(send, outcome)
            return

        async def replay() -> Message:
            if early:
                return early.pop(0)
            return await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            admission.release()


async def _disconnect(receive: Receive, early: list[Message]) -> None:
    """Return when the client hangs up; keep what was received for the app."""
    while True:
        message = await receive()
        early.append(message)
        if message["type"] == "http.disconnect":
            return


async def _busy(send: Send, outcome: str) -> None:
    message = (
        "the server is busy: retry after Retry-After seconds"
        if outcome == "full"
        else "the server could not start on this request soon enough: retry later"
    )
    body = orjson.dumps(
        ErrorBody.of(
            ErrorCode.SERVICE_UNAVAILABLE,
            message,
            {"retry_after_ms": RETRY_AFTER_SECONDS * 1000},
        ).model_dump(mode="json")
    )
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
