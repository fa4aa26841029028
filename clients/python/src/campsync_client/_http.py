"""The I/O edge: the sync protocol is written once, as generators, and driven here.

A flow (see :mod:`campsync_client._sync`) yields what it needs done: an ``httpx.Request`` to
send, or a :class:`Pause` to wait. The sync driver does it with ``httpx.Client`` and
``time.sleep``, the async driver with ``httpx.AsyncClient`` and ``asyncio.sleep``; a
transport failure is thrown back into the flow, which decides whether to retry. No protocol
logic lives in the drivers, so the two stay identical by construction.

Every response body is read with a cap: a hostile or broken server cannot make the tablet
buffer more than an envelope's worth of bytes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpx
from campsync_sync import HARD_MAX_ENVELOPE_BYTES

__all__ = ["MAX_RESPONSE_BYTES", "Flow", "Pause", "RetryPolicy", "arun", "run"]

T = TypeVar("T")

MAX_RESPONSE_BYTES: Final = HARD_MAX_ENVELOPE_BYTES + 64 * 1024


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait this many seconds before going on (a retry delay)."""

    seconds: float


Flow = Generator[httpx.Request | Pause, httpx.Response | None, T]
"""A protocol step sequence: yields requests and pauses, receives responses, returns a T."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry transport failures and 429/5xx answers.

    Delays use exponential backoff with full jitter: attempt ``n`` waits a uniformly random
    time in ``[0, min(max_delay, base_delay * 2**n)]``, so tablets reconnecting together spread
    out. A ``Retry-After`` header, when present, is honoured instead (up to ``max_delay``).

    Attributes:
        attempts: tries per request, the first included (at least 1).
        base_delay: seconds; the backoff's starting scale.
        max_delay: seconds; no single wait is longer.
    """

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_delay))
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 (jitter, not a secret)


class ResponseTooLarge(httpx.DecodingError):
    """A response body exceeded :data:`MAX_RESPONSE_BYTES`."""


def _capped(response: httpx.Response, chunks: list[bytes]) -> httpx.Response:
    # The chunks are decoded already: drop the headers that describe the encoded body.
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=b"".join(chunks), request=response.request
    )


def _fetch(client: httpx.Client, request: httpx.Request) -> httpx.Response:
    response = client.send(request, stream=True)
    try:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise ResponseTooLarge("response too large", request=request)
            chunks.append(chunk)
    finally:
        response.close()
    return _capped(response, chunks)


async def _afetch(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    response = await client.send(request, stream=True)
    try:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise ResponseTooLarge("response too large", request=request)
            chunks.append(chunk)
    finally:
        await response.aclose()
    return _capped(response, chunks)


def run(flow: Flow[T], client: httpx.Client, *, sleep: Any = time.sleep) -> T:
    """Drive a flow to its end with a sync client."""
    reply: httpx.Response | None = None
    failure: httpx.RequestError | None = None
    while True:
        try:
            step = flow.send(reply) if failure is None else flow.throw(failure)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply, failure = None, None
        if isinstance(step, Pause):
            sleep(step.seconds)
            continue
        try:
            reply = _fetch(client, step)
        except httpx.RequestError as exc:
            failure = exc


async def arun(flow: Flow[T], client: httpx.AsyncClient, *, sleep: Any = asyncio.sleep) -> T:
    """Drive a flow to its end with an async client."""
    reply: httpx.Response | None = None
    failure: httpx.RequestError | None = None
    while True:
        try:
            step = flow.send(reply) if failure is None else flow.throw(failure)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply, failure = None, None
        if isinstance(step, Pause):
            await sleep(step.seconds)
            continue
        try:
            reply = await _afetch(client, step)
        except httpx.RequestError as exc:
            failure = exc
