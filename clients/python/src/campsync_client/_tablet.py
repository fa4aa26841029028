"""``Tablet`` and ``AsyncTablet``: enrol or open a store, then work offline and sync.

Both share every local operation (:class:`~campsync_client._base.TabletBase`) and the same
protocol flows (:mod:`campsync_client._sync`); they differ only in the driver that performs the
flows' requests (``httpx.Client`` or ``httpx.AsyncClient``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from campsync_sync import EnrollmentInvite, EnrollmentResponse
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError as PydanticError

from campsync_client import _crypto
from campsync_client._base import TabletBase
from campsync_client._crypto import derive_kek
from campsync_client._errors import UntrustedServer, ValidationError, WrongPin
from campsync_client._http import RetryPolicy, arun, run
from campsync_client._identity import Identity, normalize_fingerprint
from campsync_client._models import SyncReport
from campsync_client._replica import Replica
from campsync_client._store import Store, remove_files
from campsync_client._sync import Progress, Session, enroll_flow

__all__ = ["AsyncTablet", "Tablet"]

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class _Enrolment:
    server_url: str
    code: str
    fingerprint: str | None


def _enrolment(server_url: str | None, code: str, fingerprint: str | None) -> _Enrolment:
    """Read a plain code, or the JSON of an enrolment QR code (an ``EnrollmentInvite``)."""
    if code.lstrip().startswith("{"):
        try:
            invite = EnrollmentInvite.model_validate_json(code)
        except PydanticError:
            raise ValidationError(
                "enrollment_code", "invalid_format", "not a valid enrolment QR payload"
            ) from None
        if fingerprint is not None and normalize_fingerprint(fingerprint) != normalize_fingerprint(
            invite.server_key_fingerprint
        ):
            raise UntrustedServer("the given fingerprint differs from the enrolment QR code's")
        return _Enrolment(
            server_url or invite.server_url, invite.code, invite.server_key_fingerprint
        )
    if not server_url:
        raise ValidationError("server_url", "required", "server_url: required with a plain code")
    return _Enrolment(server_url, code.strip(), fingerprint)


def _wall(clock: Clock | None) -> Callable[[], int] | None:
    return None if clock is None else (lambda: int(clock() * 1000))


def _new_device(
    store: Store,
    enrolment: _Enrolment,
    answer: EnrollmentResponse,
    server_key: bytes,
    keys: tuple[Ed25519PrivateKey, X25519PrivateKey],
    device_name: str | None,
) -> None:
    identity = Identity(
        device_id=answer.device_id,
        camp_id=answer.camp_id,
        deployment_id=answer.deployment_id,
        server_url=enrolment.server_url,
        device_name=device_name,
        signing_key=keys[0],
        exchange_key=keys[1],
        server_key=server_key,
    )
    Replica.initialise(
        store,
        identity,
        answer.manifest,
        next_seq=answer.next_seq,
        server_hlc=answer.server_hlc,
    )


def _open_store(path: Path, pin: str) -> Store:
    conn, params, wrapped = Store.locked(path)
    try:
        kek = derive_kek(pin, params)
    except ValidationError:
        conn.close()
        raise WrongPin from None  # a PIN of the wrong length cannot be the right one
    except BaseException:
        conn.close()
        raise
    return Store.unlock(path, conn, wrapped, kek)


class Tablet(TabletBase):
    """An enrolled tablet: an encrypted local store and a sync engine.

    Everything but :meth:`sync` works offline. A tablet is a context manager; close it (or
    leave the ``with`` block) to release the store. Not thread-safe: use one per thread.

    Example::

        with Tablet.open("tablet.db", pin="2468") as tablet:
            household = tablet.register_household(
                {"given_name": "Mohammad", "family_name": "Karimi", "sex": "male"},
                needs={"shelter", "food"},
            )
            report = tablet.sync()
    """

    def __init__(
        self,
        replica: Replica,
        server_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(replica, server_url)
        self._session = Session(replica, server_url, retry or RetryPolicy())
        self._http = httpx.Client(transport=transport, timeout=TIMEOUT, follow_redirects=False)

    @classmethod
    def enroll(
        cls,
        server_url: str | None,
        enrollment_code: str,
        store_path: str | os.PathLike[str],
        pin: str,
        *,
        device_name: str | None = None,
        server_key_fingerprint: str | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        operator: str | None = None,
        clock: Clock | None = None,
    ) -> Tablet:
        """Enrol this tablet with a server and create its encrypted store.

        The tablet fetches the server's signed key manifest and pins its signing key: checked
        against ``server_key_fingerprint`` (or the fingerprint of an enrolment QR code) when
        given, trusted on first use otherwise. It generates its own keys; no shared secret
        ever lives on the tablet.

        Args:
            server_url: the server, e.g. ``https://campsync.example.org``; may be ``None``
                when ``enrollment_code`` is an enrolment QR payload, which carries it.
            enrollment_code: the single-use code an admin created, or the QR payload (the
                JSON of an ``EnrollmentInvite``).
            store_path: where to create the store; must not exist yet.
            pin: the operator PIN (4 to 128 characters) that will unlock the store.
            device_name: a label the admins see, e.g. ``"torkham-tab-07"``.
            server_key_fingerprint: the fingerprint to verify the server key against.
            transport: an httpx transport (tests, proxies, custom TLS).
            retry: how hard to retry a busy or unreachable server.
            operator: who works on the tablet (recorded with each batch).
            clock: a wall clock in seconds since the epoch (tests simulate skewed tablets).

        Raises:
            StoreExists: when ``store_path`` exists.
            UntrustedServer: when the server key does not verify or match the fingerprint.
            AuthError: when the code is unknown, used or expired.
            TransportError: when the server cannot be reached.
        """
        enrolment = _enrolment(server_url, enrollment_code, server_key_fingerprint)
        path = Path(store_path)
        store = Store.create(path, pin, _crypto.DEFAULT_KDF)
        keys = (Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
        policy = retry or RetryPolicy()
        try:
            flow = enroll_flow(
                enrolment.server_url,
                enrolment.code,
                signing_key=keys[0],
                exchange_key=keys[1],
                expected_fingerprint=enrolment.fingerprint,
                device_name=device_name,
                retry=policy,
            )
            with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
                answer, server_key = run(flow, client)
            _new_device(store, enrolment, answer, server_key, keys, device_name)
            replica = Replica(store, wall=_wall(clock), operator=operator)
        except BaseException:
            store.close()
            remove_files(path)
            raise
        return cls(replica, enrolment.server_url, transport=transport, retry=policy)

    @classmethod
    def open(
        cls,
        store_path: str | os.PathLike[str],
        pin: str,
        *,
        server_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        operator: str | None = None,
        clock: Clock | None = None,
    ) -> Tablet:
        """Open an enrolled tablet's store with its PIN.

        Args:
            store_path: the store created by :meth:`enroll`.
            pin: the operator PIN.
            server_url: reach the server at another address than the one enrolled with.
            transport: an httpx transport (tests, proxies, custom TLS).
            retry: how hard to retry a busy or unreachable server.
            operator: who works on the tablet (recorded with each batch).
            clock: a wall clock in seconds since the epoch (tests simulate skewed tablets).

        Raises:
            WrongPin: when the PIN does not open the store; nothing is decrypted.
            StoreNotFound: when there is no store at ``store_path``.
        """
        store = _open_store(Path(store_path), pin)
        try:
            replica = Replica(store, wall=_wall(clock), operator=operator)
        except BaseException:
            store.close()
            raise
        url = server_url or replica.identity.server_url
        return cls(replica, url, transport=transport, retry=retry)

    def sync(self, progress: Progress | None = None) -> SyncReport:
        """Push every queued operation, then pull what changed elsewhere.

        Safe to interrupt at any point: the next sync resumes, re-sending identical sealed
        bytes, and the server applies nothing twice. When the server says this tablet was
        revoked and its order verifies with the pinned key, the tablet deletes its keys and
        data and the report says ``wiped=True``.

        Args:
            progress: called with a :class:`SyncProgress` after each batch and each page.

        Raises:
            TransportError: the server stayed unreachable or busy; everything stays queued.
            ServerError: the server refused a request (see its ``code``).
            EnvelopeError: an answer did not verify; it was discarded.
        """
        report = run(self._session.sync(progress), self._http)
        if report.wiped:
            self._mark_wiped()
        return report

    def close(self) -> None:
        """Release the store and the HTTP connections (idempotent)."""
        self._http.close()
        if self._replica is not None:
            self._replica.store.close()
            self._replica = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncTablet(TabletBase):
    """:class:`Tablet` for asyncio applications.

    The network calls (:meth:`enroll`, :meth:`open`'s key derivation, :meth:`sync`) are
    coroutines; local operations (registering, reading, searching) are plain methods, as they
    touch only the local store for a few milliseconds.
    """

    def __init__(
        self,
        replica: Replica,
        server_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(replica, server_url)
        self._session = Session(replica, server_url, retry or RetryPolicy())
        self._http = httpx.AsyncClient(transport=transport, timeout=TIMEOUT, follow_redirects=False)

    @classmethod
    async def enroll(
        cls,
        server_url: str | None,
        enrollment_code: str,
        store_path: str | os.PathLike[str],
        pin: str,
        *,
        device_name: str | None = None,
        server_key_fingerprint: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        operator: str | None = None,
        clock: Clock | None = None,
    ) -> AsyncTablet:
        """Enrol this tablet; see :meth:`Tablet.enroll` for the arguments and errors."""
        enrolment = _enrolment(server_url, enrollment_code, server_key_fingerprint)
        path = Path(store_path)
        store = await asyncio.to_thread(Store.create, path, pin, _crypto.DEFAULT_KDF)
        keys = (Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
        policy = retry or RetryPolicy()
        try:
            flow = enroll_flow(
                enrolment.server_url,
                enrolment.code,
                signing_key=keys[0],
                exchange_key=keys[1],
                expected_fingerprint=enrolment.fingerprint,
                device_name=device_name,
                retry=policy,
            )
            async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
                answer, server_key = await arun(flow, client)
            _new_device(store, enrolment, answer, server_key, keys, device_name)
            replica = Replica(store, wall=_wall(clock), operator=operator)
        except BaseException:
            store.close()
            remove_files(path)
            raise
        return cls(replica, enrolment.server_url, transport=transport, retry=policy)

    @classmethod
    async def open(
        cls,
        store_path: str | os.PathLike[str],
        pin: str,
        *,
        server_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        operator: str | None = None,
        clock: Clock | None = None,
    ) -> AsyncTablet:
        """Open a store; the key derivation runs in a worker thread. See :meth:`Tablet.open`."""
        store = await asyncio.to_thread(_open_store, Path(store_path), pin)
        try:
            replica = Replica(store, wall=_wall(clock), operator=operator)
        except BaseException:
            store.close()
            raise
        return cls(
            replica, server_url or replica.identity.server_url, transport=transport, retry=retry
        )

    async def sync(self, progress: Progress | None = None) -> SyncReport:
        """Push, then pull; see :meth:`Tablet.sync`."""
        report = await arun(self._session.sync(progress), self._http)
        if report.wiped:
            self._mark_wiped()
        return report

    async def aclose(self) -> None:
        """Release the store and the HTTP connections (idempotent)."""
        await self._http.aclose()
        if self._replica is not None:
            self._replica.store.close()
            self._replica = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
