"""Push, receipts, device tokens and pull (docs/sync-http.md). Bodies are sealed envelopes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

from campsync_sync import (
    ChallengeRequest,
    ChallengeResponse,
    DeviceToken,
    ErrorBody,
    ErrorCode,
    TokenRequest,
)
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentDevice, Public
from api.deps import EngineDep, KeyringDep, SessionDep, SettingsDep
from api.devices import tokens as device_tokens
from api.errors import DomainError
from api.ratelimit import client_address
from api.sync import pull, service

router = APIRouter(prefix="/v1/sync", tags=["sync"], dependencies=[Public])

OCTETS: Final = "application/octet-stream"
MAX_CONCURRENT_PUSHES: Final = 32
"""Pushes per process that may hold a body (being read, or waiting for a merge turn): at most
32 envelopes of 2 MiB in memory. Merges are fewer (below); the other slots let a tablet's
push be read while slow or stalled clients hold some, each for at most the body timeout."""
QUEUE_PATIENCE_SECONDS: Final = 10.0
MERGES_AT_ONCE: Final = 2
"""Pushes checked and merged at once in one process. The merge is Python: two threads keep
the process busy (one computes while the other waits on the database); more only take the
GIL from each other (measured: a fifth more CPU per record with four)."""
SQLITE_MERGES_AT_ONCE: Final = 1
"""On SQLite, where writers take turns anyway: a second thread only takes the GIL from the
one holding the writer lock, so the lock is held longer. Measured with two workers on two
cores: 13.5-15.7k records/s with one merge per process, 11.4-14.9k with two; with one
worker, the same 9.6k either way."""


class PushGate:
    """Admits a few pushes at a time; the others wait for a slot before their body is read.

    A waiting push holds only its socket, so a reconnect storm of hundreds of tablets costs
    little memory; one that waits longer than ``patience`` is told when to come back (503).
    Of the admitted pushes, only ``merges`` at a time run their checks and merge.

    With ``rebalance`` (several worker processes), a push answered while others wait in this
    process closes its connection. A tablet keeps its connection, and the worker that took
    it, for as long as it syncs; so with few tablets one worker can end up merging for most
    of them while the other idles (measured with 4 tablets on 2 workers: often 3 and 1, for
    a quarter fewer records per second). A new connection goes to whichever worker accepts
    it first, usually the idle one.
    """

    def __init__(
        self,
        slots: int = MAX_CONCURRENT_PUSHES,
        patience: float = QUEUE_PATIENCE_SECONDS,
        merges: int = MERGES_AT_ONCE,
        *,
        rebalance: bool = False,
    ):
        self._slots = asyncio.Semaphore(slots)
        self._merges = asyncio.Semaphore(merges)
        self.merges = merges
        self.patience = patience
        self.rebalance = rebalance
        self.admitted = 0
        """Pushes holding a slot in this process."""

    def should_close(self) -> bool:
        """Whether a push answered now should close its connection (see the class)."""
        return self.rebalance and self.admitted > 1

    @contextlib.asynccontextmanager
    async def merging(self) -> AsyncIterator[None]:
        """A turn to check and merge, for a push already admitted (its wait is bounded)."""
        async with self._merges:
            yield

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.patience):
                await self._slots.acquire()
        except TimeoutError:
            raise service.Busy("too many batches in progress: retry later") from None
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1
            self._slots.release()


_E = {"model": ErrorBody}
_SEALED: dict[int | str, dict[str, Any]] = {
    200: {"content": {OCTETS: {}}, "description": "A sealed envelope"},
}
_PUSH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_E, "description": "Bad envelope, signature, key, plaintext"},
    401: {**_E, "description": "Unknown device"},
    403: {**_E, "description": "Device revoked: details carry the signed wipe order"},
    409: {**_E, "description": "seq_gap, seq_reused or batch_in_flight"},
    410: {**_E, "description": "Sealed to a destroyed key: re-seal"},
    413: {**_E, "description": "Envelope too large or too many operations"},
    415: {**_E, "description": "Not application/octet-stream"},
    422: {**_E, "description": "Batch id reused for different bytes"},
    503: {**_E, "description": "Busy: retry after Retry-After seconds"},
}
_DEVICE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {**_E, "description": "Missing, invalid or expired device token"},
    403: {**_E, "description": "Device revoked: details carry the signed wipe order"},
}


async def _body(request: Request, timeout: float) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            return await request.body()
    except TimeoutError:
        raise DomainError(
            "the request body arrived too slowly",
            code=ErrorCode.REQUEST_TIMEOUT,
            headers={"Retry-After": service.RETRY_AFTER_SECONDS},
        ) from None


@router.put(
    "/batches/{batch_id}",
    summary="Push a sealed batch",
    response_class=Response,
    responses={**_SEALED, **_PUSH_ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def push_batch(
    batch_id: uuid.UUID,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    keyring: KeyringDep,
) -> Response:
    """Authenticated by the envelope's own signature; answers the sealed receipt."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != OCTETS:
        raise DomainError(
            "send the sealed envelope as application/octet-stream",
            code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        )
    gate: PushGate = request.app.state.push_gate
    async with gate.slot():
        data = await _body(request, settings.body_timeout_seconds)
        async with gate.merging():
            result = await run_in_threadpool(
                service.push_batch,
                engine=engine,
                settings=settings,
                keyring=keyring,
                batch_id=batch_id,
                data=data,
            )
        close = gate.should_close()
    return Response(
        result.envelope, media_type=OCTETS, headers={"Connection": "close"} if close else None
    )


@router.get(
    "/batches/{batch_id}",
    summary="The stored receipt of a batch",
    response_class=Response,
    responses={**_SEALED, **_DEVICE_ERRORS, 404: {**_E, "description": "No such receipt"}},
)
def get_receipt(
    batch_id: uuid.UUID, session: SessionDep, keyring: KeyringDep, device: CurrentDevice
) -> Response:
    """After a lost answer: the receipt of one of the caller's batches, sealed to it."""
    envelope = service.stored_receipt(
        session=session, keys=keyring.current(), device=device, batch_id=batch_id
    )
    return Response(envelope, media_type=OCTETS)


_JSON_BODY: dict[int | str, dict[str, Any]] = {400: {**_E, "description": "The body is not JSON"}}


@router.post(
    "/challenge",
    summary="A challenge for a device to sign",
    responses={**_DEVICE_ERRORS, **_JSON_BODY},
)
def challenge(
    body: ChallengeRequest, session: SessionDep, keyring: KeyringDep
) -> ChallengeResponse:
    """Valid two minutes; signing it yields a device token."""
    return device_tokens.issue_challenge(
        session=session, keys=keyring.current(), device_id=body.device_id
    )


@router.post(
    "/token",
    summary="A short-lived device token",
    responses={
        **_DEVICE_ERRORS,
        **_JSON_BODY,
        429: {**_E, "description": "Too many failed exchanges: retry after Retry-After"},
    },
)
def token(
    body: TokenRequest,
    request: Request,
    session: SessionDep,
    keyring: KeyringDep,
    settings: SettingsDep,
) -> DeviceToken:
    """Exchange a signed challenge for a bearer token bound to the device (15 minutes).

    A valid signature always gets its token; failures back off (429 with Retry-After).
    """
    return device_tokens.issue_token(
        session=session,
        keys=keyring.current(),
        settings=settings,
        request=body,
        backoff=request.app.state.token_backoff,
        address=client_address(request.client),
    )


@router.get(
    "/changes",
    summary="Pull the changes of the device's camp after a cursor",
    response_class=Response,
    responses={
        **_SEALED,
        **_DEVICE_ERRORS,
        400: {**_E, "description": "Cursor not handed out by this server"},
        422: {**_E, "description": "limit above CAMPSYNC_MAX_PAGE_SIZE"},
    },
)
def changes(
    session: SessionDep,
    keyring: KeyringDep,
    settings: SettingsDep,
    device: CurrentDevice,
    cursor: int = Query(
        default=0,
        ge=0,
        le=2**62,
        description="The `next_cursor` of the previous page; 0 for a fresh tablet.",
    ),
    limit: int = Query(
        default=500,
        ge=1,
        le=100_000,
        description="Rows wanted per page, at most CAMPSYNC_MAX_PAGE_SIZE; a commit group is "
        "never split, so a page may differ.",
    ),
) -> Response:
    """A sealed ``PullPage``: current rows and tombstones, whole commit groups only."""
    if limit > settings.max_page_size:
        raise DomainError(
            "limit is above the page size limit",
            {"limit": settings.max_page_size},
            code=ErrorCode.VALIDATION_ERROR,
        )
    envelope = pull.pull_page(
        session=session, keys=keyring.current(), device=device, cursor=cursor, limit=limit
    )
    device_tokens.touch_pull(session, device)
    return Response(envelope, media_type=OCTETS)
