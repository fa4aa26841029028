"""Every error the client raises.

Our exception hierarchy::

    ClientError                     # base of everything campsync_client raises
    ├── ValidationError             # a field value is invalid (also a ValueError); raised at once
    ├── RecordNotFound              # no such (live) record on this tablet (also a LookupError)
    ├── StoreError                  # the encrypted local store
    │   ├── WrongPin                # the PIN does not open the store; nothing was decrypted
    │   ├── StoreNotFound           # no store at that path
    │   ├── StoreExists             # enrolling over an existing store
    │   └── Wiped                   # the tablet was revoked and wiped itself
    └── SyncError                   # talking to the server failed; local data stays queued
        ├── TransportError          # network down, timeouts, 429/503 after every retry
        ├── ServerError             # the server answered an error body (``code``, ``status``)
        │   ├── AuthError           # enrolment code, proof or device identity refused
        │   │   └── DeviceRevoked   # revoked, but the wipe order did not verify: nothing wiped
        │   └── BatchRejected       # a whole batch was refused (seq gap, mismatch...)
        ├── EnvelopeError           # a server answer does not verify or decrypt
        └── UntrustedServer         # the server's signing key is not the pinned one

Messages never hold personal data: a ``ValidationError`` names the field and the rule broken,
never the value. Errors carry ``batch_id`` where one is involved. Nothing here is logged; that
choice is left to the caller.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = [
    "AuthError",
    "BatchRejected",
    "ClientError",
    "DeviceRevoked",
    "EnvelopeError",
    "RecordNotFound",
    "ServerError",
    "StoreError",
    "StoreExists",
    "StoreNotFound",
    "SyncError",
    "TransportError",
    "UntrustedServer",
    "ValidationError",
    "Wiped",
    "WrongPin",
]


class ClientError(Exception):
    """Base of every error raised by campsync_client."""


class ValidationError(ClientError, ValueError):
    """A value is not valid for its field.

    Attributes:
        field: the field name.
        reason: a short machine-readable code (``invalid_choice``, ``too_long``...).
    """

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


class RecordNotFound(ClientError, LookupError):
    """No live record with that id on this tablet (never created, deleted or erased)."""

    def __init__(self, entity: str, record_id: uuid.UUID | str) -> None:
        super().__init__(f"no {entity} {record_id} on this tablet")
        self.entity = entity
        self.record_id = record_id


class StoreError(ClientError):
    """The local store cannot be used."""


class WrongPin(StoreError):
    """The PIN does not open this store. Nothing was decrypted."""

    def __init__(self) -> None:
        super().__init__("wrong PIN")


class StoreNotFound(StoreError):
    """There is no tablet store at the given path."""


class StoreExists(StoreError):
    """A tablet store already exists at the given path."""


class Wiped(StoreError):
    """The server revoked this tablet and it wiped its keys and data."""

    def __init__(self) -> None:
        super().__init__("this tablet was revoked and its data wiped")


class SyncError(ClientError):
    """Syncing failed; local data stays queued and the next sync resumes.

    Attributes:
        batch_id: the batch being sent, if any.
    """

    def __init__(self, message: str, *, batch_id: uuid.UUID | None = None) -> None:
        super().__init__(message)
        self.batch_id = batch_id


class TransportError(SyncError):
    """The server could not be reached, or stayed busy, through every retry."""


class ServerError(SyncError):
    """The server answered with an error body.

    Attributes:
        status: the HTTP status.
        code: the stable error code (``campsync_sync.ErrorCode`` value, or ``unknown``).
        details: the error's details, if any.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        batch_id: uuid.UUID | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}", batch_id=batch_id)
        self.status = status
        self.code = code
        self.details = details


class AuthError(ServerError):
    """The server refused who we are: enrolment code, proof, device identity or token."""


class DeviceRevoked(AuthError):
    """The server says this tablet is revoked, but its wipe order did not verify.

    A genuine order is signed with the pinned server key; an unverified one may come from a
    proxy, so nothing was wiped.
    """


class BatchRejected(ServerError):
    """The server refused a whole batch (seq gap, seq reused, mismatch, bad envelope...)."""


class EnvelopeError(SyncError):
    """An answer of the server does not verify or decrypt; it was discarded."""


class UntrustedServer(SyncError):
    """The server's signing key is not the pinned one, or its manifest does not verify."""
