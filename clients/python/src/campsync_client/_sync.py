"""The sync protocol of docs/sync-http.md, written once as I/O-free flows.

Each flow is a generator that yields the requests it needs sent and pauses it needs waited
(see :mod:`campsync_client._http`), and reads and writes the local replica in short
transactions between them. Killing the process between any two steps loses nothing: what was
committed locally stays, what was not is redone, and the server deduplicates what it already
applied (same batch, same bytes, same receipt).
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import httpx
from campsync_sync import (
    ChallengeRequest,
    ChallengeResponse,
    DeviceToken,
    EnrollmentRequest,
    EnrollmentResponse,
    ProtocolError,
    PullPage,
    Receipt,
    SignedManifest,
    Suite,
    TokenRequest,
    b64encode,
    enrollment_proof_message,
    open_envelope,
    sign_statement,
    signing_public_bytes,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError as PydanticError

from campsync_client import _outbox as outbox
from campsync_client._errors import (
    AuthError,
    BatchRejected,
    DeviceRevoked,
    EnvelopeError,
    ServerError,
    TransportError,
)
from campsync_client._http import Flow, Pause, RetryPolicy
from campsync_client._identity import ServerKeys, verify_manifest, verify_wipe_order
from campsync_client._models import SyncProgress, SyncReport
from campsync_client._outbox import SealedBatch
from campsync_client._replica import Replica
from campsync_client._version import __version__

__all__ = ["PAGE_SIZE", "Session", "enroll_flow"]

log = logging.getLogger("campsync_client")
"""Ids, counts and status codes only: nothing personal is ever logged."""

PAGE_SIZE: Final = 500
TOKEN_LIFETIME: Final = 600.0
"""Seconds a device token is reused; shorter than the server's 15 minutes, on the monotonic
clock, because the tablet's wall clock may be wrong by years."""
_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_AUTH_CODES: Final = frozenset(
    {
        "unauthenticated",
        "forbidden",
        "device_unknown",
        "device_revoked",
        "enrollment_code_invalid",
        "proof_invalid",
    }
)
_OUR_SUITES: Final = frozenset({Suite.X25519_CHACHA20POLY1305, Suite.X25519_AES256GCM})
_HEADERS: Final = {"User-Agent": f"campsync-client/{__version__}", "Accept-Encoding": "identity"}

Progress = Callable[[SyncProgress], None]


class _WipeOrder(Exception):
    """The server answered ``device_revoked``; ``verified`` once its order checks out."""

    def __init__(self, details: Any, *, verified: bool = False) -> None:
        super().__init__("device revoked")
        self.details = details
        self.verified = verified


def _error_body(response: httpx.Response) -> tuple[str, str, Any]:
    """Code, message and details of an error answer, tolerating any body."""
    try:
        error = json.loads(response.content)["error"]
        code, message = str(error["code"])[:64], str(error["message"])[:200]
        return code, message, error.get("details")
    except (ValueError, KeyError, TypeError):
        return "unknown", response.reason_phrase or "error", None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    # An HTTP date: measured against the server's own Date header, never the tablet's clock.
    try:
        then = email.utils.parsedate_to_datetime(value)
        now = email.utils.parsedate_to_datetime(response.headers["Date"])
        return (then - now).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def _page_limit(response: httpx.Response) -> int | None:
    """The page size a ``422`` answer to a pull says the server allows, if it says so."""
    if response.status_code != 422:
        return None
    details = _error_body(response)[2]
    limit = details.get("limit") if isinstance(details, dict) else None
    return limit if isinstance(limit, int) and 0 < limit < PAGE_SIZE else None


def _raise_for(
    response: httpx.Response,
    *,
    batch_id: uuid.UUID | None = None,
    kind: type[ServerError] = ServerError,
) -> None:
    """Raise the error an answer stands for (``_WipeOrder`` for a revoked device)."""
    code, message, details = _error_body(response)
    if code == "device_revoked":
        raise _WipeOrder(details)
    if code in _AUTH_CODES or response.status_code == 401:
        kind = AuthError
    raise kind(response.status_code, code, message, details=details, batch_id=batch_id)


def _send(
    retry: RetryPolicy, build: Callable[[], httpx.Request], *, batch_id: uuid.UUID | None = None
) -> Flow[httpx.Response]:
    """Send a request, retrying transport failures and busy answers with backoff."""
    attempt = 0
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            response = yield build()
        except httpx.RequestError as exc:
            failure = f"server unreachable ({type(exc).__name__})"
        else:
            assert response is not None  # noqa: S101 (the drivers always answer)
            code = _error_body(response)[0] if response.status_code == 409 else ""
            if response.status_code not in _RETRY_STATUSES and code != "batch_in_flight":
                return response
            retry_after = _retry_after(response)
            failure = f"server busy ({response.status_code})"
        if attempt >= retry.attempts:
            raise TransportError(failure, batch_id=batch_id)
        delay = retry.delay(attempt, retry_after)
        log.info("%s; retry %d in %.1fs", failure, attempt, delay)
        yield Pause(delay)


def enroll_flow(
    server_url: str,
    code: str,
    *,
    signing_key: Ed25519PrivateKey,
    exchange_key: X25519PrivateKey,
    expected_fingerprint: str | None,
    device_name: str | None,
    retry: RetryPolicy,
) -> Flow[tuple[EnrollmentResponse, bytes]]:
    """Enrol with a server: returns its answer and the server signing key to pin."""
    base = server_url.rstrip("/")
    response = yield from _send(
        retry, partial(httpx.Request, "GET", f"{base}/v1/keys", headers=_HEADERS)
    )
    if response.status_code != 200:
        _raise_for(response)
    try:
        signed = SignedManifest.model_validate_json(response.content)
    except PydanticError:
        raise EnvelopeError("the server's key manifest is malformed") from None
    manifest, server_key = verify_manifest(signed, expected_fingerprint=expected_fingerprint)
    signing_public = signing_public_bytes(signing_key)
    exchange_public = exchange_key.public_key().public_bytes_raw()
    proof = enrollment_proof_message(code, manifest.deployment_id, signing_public, exchange_public)
    request = EnrollmentRequest(
        code=code,
        device_name=device_name,
        signing_key=b64encode(signing_public),
        exchange_key=b64encode(exchange_public),
        proof=b64encode(signing_key.sign(proof)),
    )
    body = request.model_dump(mode="json")
    enroll = partial(
        httpx.Request, "POST", f"{base}/v1/devices/enroll", json=body, headers=_HEADERS
    )
    response = yield from _send(retry, enroll)
    if response.status_code not in (200, 201):
        _raise_for(response, kind=AuthError)
    try:
        enrolled = EnrollmentResponse.model_validate_json(response.content)
    except PydanticError:
        raise EnvelopeError("the server's enrolment answer is malformed") from None
    answered, _ = verify_manifest(enrolled.manifest, pinned=server_key)
    if not enrolled.deployment_id == manifest.deployment_id == answered.deployment_id:
        raise EnvelopeError("the server's enrolment answer names another deployment")
    return enrolled, server_key


class Session:
    """The protocol between one tablet and its server: push, pull, tokens, wipe orders."""

    def __init__(self, replica: Replica, server_url: str, retry: RetryPolicy) -> None:
        self.replica = replica
        self.identity = replica.identity
        self.base = server_url.rstrip("/")
        self.retry = retry
        self.page_size = PAGE_SIZE
        self._token: tuple[str, float] | None = None

    # ------------------------------------------------------------------ sync

    def sync(self, progress: Progress | None = None) -> Flow[SyncReport]:
        """Push every queued operation, then pull until the server has no more."""
        report = SyncReport()
        try:
            yield from self._push_all(report, progress)
            yield from self._pull_all(report, progress)
        except _WipeOrder as order:
            if not (order.verified or verify_wipe_order(self.identity, order.details)):
                raise DeviceRevoked(
                    403, "device_revoked", "revoked, but the wipe order does not verify"
                ) from None
            log.warning("device %s revoked: wipe order verified, wiping", self.identity.device_id)
            self.replica.store.wipe()
            report.wiped = True
            return report
        self.replica.mark_synced()
        return report

    def refresh_manifest(self) -> Flow[None]:
        """Fetch the server's key manifest, check it against the pinned key and keep it."""
        keys = partial(httpx.Request, "GET", f"{self.base}/v1/keys", headers=_HEADERS)
        response = yield from _send(self.retry, keys)
        if response.status_code != 200:
            _raise_for(response)
        try:
            signed = SignedManifest.model_validate_json(response.content)
        except PydanticError:
            raise EnvelopeError("the server's key manifest is malformed") from None
        verify_manifest(signed, pinned=self.identity.server_key)
        self.replica.save_manifest(signed)

    # ------------------------------------------------------------------ push

    def _push_all(self, report: SyncReport, progress: Progress | None) -> Flow[None]:
        replica = self.replica
        total = outbox.pending_count(replica)
        if total and progress is not None:
            progress(SyncProgress("push", 0, total))
        if outbox.unsealed_count(replica):
            # Rotation is monthly: one small request keeps new batches on the current key.
            yield from self.refresh_manifest()
        done = 0
        while True:
            sealed = outbox.sealed_batches(replica)
            batch = sealed[0] if sealed else outbox.seal_next(replica)
            if batch is None:
                return
            receipt = yield from self._push(batch)
            results = outbox.apply_receipt(replica, batch, receipt)
            log.info(
                "batch %s seq %d acknowledged (%d operations)", batch.batch_id, batch.seq, batch.ops
            )
            report.batches += 1
            report.pushed += batch.ops
            for result in results:
                outcome = result.outcome.value
                if outcome in ("applied", "merged"):
                    report.applied += 1
                elif outcome == "conflict":
                    report.conflicts += 1
                elif outcome == "flagged":
                    report.flagged += 1
                else:
                    report.rejected += 1
            done += batch.ops
            if progress is not None:
                progress(SyncProgress("push", done, max(total, done)))

    def _push(self, batch: SealedBatch) -> Flow[Receipt]:
        resealed = False
        while True:
            put = partial(
                httpx.Request,
                "PUT",
                f"{self.base}/v1/sync/batches/{batch.batch_id}",
                content=batch.envelope,
                headers={**_HEADERS, "Content-Type": "application/octet-stream"},
            )
            response = yield from _send(self.retry, put, batch_id=batch.batch_id)
            if response.status_code == 200:
                receipt = self._open_receipt(response.content, batch)
                if receipt.wipe:
                    # The receipt is signed with the pinned key: the order is authentic.
                    raise _WipeOrder(None, verified=True)
                if receipt.status.value != "applied":
                    raise BatchRejected(
                        200, "quarantined", "the server quarantined the batch",
                        batch_id=batch.batch_id,
                    )  # fmt: skip
                return receipt
            code = _error_body(response)[0]
            if code in ("key_destroyed", "unknown_key") and not resealed:
                log.info("batch %s: %s, sealing it again", batch.batch_id, code)
                # The key we sealed to is gone: same batch id, same seq, current key.
                yield from self.refresh_manifest()
                batch = outbox.reseal(self.replica, batch.batch_id)
                resealed = True
                continue
            _raise_for(response, batch_id=batch.batch_id, kind=BatchRejected)

    def _open_receipt(self, data: bytes, batch: SealedBatch) -> Receipt:
        try:
            opened = open_envelope(
                data,
                keys=ServerKeys(self.identity),
                deployment_id=self.identity.deployment_id,
                allowed_suites=_OUR_SUITES,
                typ="receipt",
            )
            header = opened.header
            receipt = Receipt.model_validate_json(opened.plaintext)
        except (ProtocolError, PydanticError):
            raise EnvelopeError(
                "the server's receipt does not verify", batch_id=batch.batch_id
            ) from None
        if (
            header.typ != "receipt"
            or header.batch != batch.batch_id
            or header.seq != batch.seq
            or receipt.batch_id != batch.batch_id
            or receipt.seq != batch.seq
            or receipt.device_id != self.identity.device_id
        ):
            raise EnvelopeError(
                "the server's receipt is for another batch", batch_id=batch.batch_id
            )
        return receipt

    # ------------------------------------------------------------------ pull

    def _pull_all(self, report: SyncReport, progress: Progress | None) -> Flow[None]:
        restarted = False
        while True:
            cursor = self.replica.cursor
            try:
                page = yield from self._pull_page(cursor)
            except ServerError as exc:
                if exc.code != "cursor_invalid" or cursor == 0 or restarted:
                    raise
                # The server does not know our cursor (restored from a backup?): pulling
                # again from 0 is safe, as a page carries whole states and applying is idempotent.
                log.warning("the server refused cursor %d; pulling again from 0", cursor)
                self.replica.reset_cursor()
                restarted = True
                continue
            self.replica.apply_page(page)
            report.pulled += len(page.changes)
            log.debug(
                "pulled %d changes, cursor %d -> %d", len(page.changes), cursor, page.next_cursor
            )
            if progress is not None:
                progress(SyncProgress("pull", report.pulled))
            if not page.has_more:
                return
            if page.next_cursor <= cursor:
                raise EnvelopeError("the server's pull cursor does not advance")

    def _pull_page(self, cursor: int) -> Flow[PullPage]:
        url = f"{self.base}/v1/sync/changes"
        fresh_token = smaller_page = False
        while True:
            token = yield from self._device_token()
            params = {"cursor": cursor, "limit": self.page_size}
            headers = {**_HEADERS, "Authorization": f"Bearer {token}"}
            get = partial(httpx.Request, "GET", url, params=params, headers=headers)
            response = yield from _send(self.retry, get)
            if response.status_code == 401 and not fresh_token:
                self._token = None  # expired, or the server restarted: one fresh token
                fresh_token = True
                continue
            limit = _page_limit(response)
            if limit is not None and not smaller_page:
                self.page_size = limit  # the deployment caps pages below our default
                smaller_page = True
                continue
            if response.status_code != 200:
                _raise_for(response)
            return self._open_page(response.content, cursor)

    def _open_page(self, data: bytes, cursor: int) -> PullPage:
        try:
            opened = open_envelope(
                data,
                keys=ServerKeys(self.identity),
                deployment_id=self.identity.deployment_id,
                allowed_suites=_OUR_SUITES,
                typ="pull",
            )
            page = PullPage.model_validate_json(opened.plaintext)
        except (ProtocolError, PydanticError):
            raise EnvelopeError("a pulled page does not verify") from None
        if (
            opened.header.typ != "pull"
            or opened.header.seq != cursor
            or page.cursor != cursor
            or page.camp_id != self.identity.camp_id
        ):
            raise EnvelopeError("a pulled page answers another request")
        return page

    def _device_token(self) -> Flow[str]:
        if self._token is not None and time.monotonic() < self._token[1]:
            return self._token[0]
        device_id = self.identity.device_id
        body = ChallengeRequest(device_id=device_id).model_dump(mode="json")
        ask = partial(
            httpx.Request, "POST", f"{self.base}/v1/sync/challenge", json=body, headers=_HEADERS
        )
        response = yield from _send(self.retry, ask)
        if not response.is_success:
            _raise_for(response)
        try:
            challenge = ChallengeResponse.model_validate_json(response.content).challenge
        except PydanticError:
            raise EnvelopeError("the server's challenge is malformed") from None
        statement = f"{self.identity.deployment_id}\0{device_id}\0{challenge}".encode()
        request = TokenRequest(
            device_id=device_id,
            challenge=challenge,
            signature=sign_statement(self.identity.signing_key, "device-token", statement),
        )
        answer = partial(
            httpx.Request,
            "POST",
            f"{self.base}/v1/sync/token",
            json=request.model_dump(mode="json"),
            headers=_HEADERS,
        )
        response = yield from _send(self.retry, answer)
        if not response.is_success:
            _raise_for(response)
        try:
            token = DeviceToken.model_validate_json(response.content).token
        except PydanticError:
            raise EnvelopeError("the server's device token is malformed") from None
        self._token = (token, time.monotonic() + TOKEN_LIFETIME)
        return token
