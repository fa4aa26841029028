"""Wire schemas: every message a tablet and a server exchange.

All models are frozen and forbid unknown fields. Messages carry ``protocol`` and
``schema_version`` so that a receiver can refuse what it does not know and upcast what it does.

A batch carries its operations as raw JSON objects and :func:`parse_operation` validates each one
on its own: one malformed operation is rejected in the receipt and never blocks its batch
(:func:`campsync_sync.operations.read_operation` adds upcasting and the domain checks).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from campsync_sync.fields import Entity
from campsync_sync.versions import HARD_MAX_OPERATIONS, PROTOCOL_VERSION, SCHEMA_VERSION

__all__ = [
    "Batch",
    "BatchStatus",
    "ChallengeRequest",
    "ChallengeResponse",
    "DeleteOp",
    "DeviceToken",
    "EnrollmentInvite",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EventEntity",
    "FieldWrite",
    "HLCText",
    "KeyInfo",
    "KeyManifest",
    "OpResult",
    "Operation",
    "Outcome",
    "PatchOp",
    "PullPage",
    "Receipt",
    "ReferralOp",
    "RegistryEntity",
    "RejectReason",
    "RestoreOp",
    "RowState",
    "ServiceOp",
    "SetChange",
    "SetElement",
    "SignedManifest",
    "TokenRequest",
    "VoidOp",
    "WireModel",
    "operation_adapter",
    "parse_operation",
]

HLCText = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
"""An HLC in its 32-hex-digit text form (see :mod:`campsync_sync.hlc`)."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# C0 and C1 controls, bidi embeddings, overrides and isolates: what the field rules refuse in
# text (campsync_sync.fields), for free text outside operations.
_NO_CONTROLS = r"^[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*$"
Base64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]+={0,2}$", max_length=4096)]
Version = Annotated[int, Field(ge=1, lt=1 << 16)]
"""A protocol or schema version number."""
Seq = Annotated[int, Field(ge=0, lt=1 << 63)]
RegistryEntity = Literal["household", "person"]
EventEntity = Literal["service_delivery", "referral"]


class WireModel(BaseModel):
    """Base of every wire model: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- operations


class FieldWrite(WireModel):
    """A new value for one field, its clock, and the clock of the value the tablet saw."""

    value: JsonValue
    hlc: HLCText
    base: HLCText | None = None


class SetChange(WireModel):
    """Add (``present=True``) or remove one element of a set field."""

    element: Name
    present: bool
    hlc: HLCText


class PatchOp(WireModel):
    """Create or edit a registry record, field by field.

    A patch on an id the server does not hold creates the record.
    """

    op: Literal["patch"] = "patch"
    op_id: uuid.UUID
    entity: RegistryEntity
    id: uuid.UUID
    fields: dict[Name, FieldWrite] = Field(default_factory=dict, max_length=64)
    sets: dict[Name, Annotated[list[SetChange], Field(max_length=64)]] = Field(
        default_factory=dict, max_length=8
    )


class DeleteOp(WireModel):
    """Delete (tombstone) a registry record.

    ``base`` holds the field clocks the tablet saw: a field whose server clock differs was
    edited concurrently, and that edit is kept in a conflict record.
    """

    op: Literal["delete"] = "delete"
    op_id: uuid.UUID
    entity: RegistryEntity
    id: uuid.UUID
    hlc: HLCText
    reason: Name
    base: dict[Name, HLCText] = Field(default_factory=dict, max_length=64)


class RestoreOp(WireModel):
    """Undo a delete explicitly; an edit never resurrects a record."""

    op: Literal["restore"] = "restore"
    op_id: uuid.UUID
    entity: RegistryEntity
    id: uuid.UUID
    hlc: HLCText


class ServiceOp(WireModel):
    """Record a service delivered to a household (insert-only, idempotent by ``id``)."""

    op: Literal["service"] = "service"
    op_id: uuid.UUID
    id: uuid.UUID
    hlc: HLCText
    household_id: uuid.UUID
    person_id: uuid.UUID | None = None
    service: Name
    quantity: float = Field(default=1, gt=0, le=1_000_000)
    unit: Annotated[str, StringConstraints(min_length=1, max_length=24)] | None = None
    delivered_at: AwareDatetime


class ReferralOp(WireModel):
    """Record a referral (insert-only). Free-text notes are deliberately absent: they leak."""

    op: Literal["referral"] = "referral"
    op_id: uuid.UUID
    id: uuid.UUID
    hlc: HLCText
    household_id: uuid.UUID
    person_id: uuid.UUID | None = None
    category: Name
    urgency: Name
    status: Name = "open"


class VoidOp(WireModel):
    """Cancel an event recorded in error; the event stays, marked void."""

    op: Literal["void"] = "void"
    op_id: uuid.UUID
    entity: EventEntity
    id: uuid.UUID
    hlc: HLCText
    reason: Name


Operation = Annotated[
    PatchOp | DeleteOp | RestoreOp | ServiceOp | ReferralOp | VoidOp,
    Field(discriminator="op"),
]
operation_adapter: TypeAdapter[Operation] = TypeAdapter(Operation)


def parse_operation(raw: Any) -> Operation:
    """Validate one raw operation of a batch.

    Raises:
        pydantic.ValidationError: when the operation does not match any operation schema.
    """
    return operation_adapter.validate_python(raw)


class Batch(WireModel):
    """The plaintext of a pushed envelope: a device's operations, in order."""

    protocol: Version = PROTOCOL_VERSION
    schema_version: Version = SCHEMA_VERSION
    batch_id: uuid.UUID
    device_id: uuid.UUID
    seq: int = Field(ge=1, lt=1 << 63)
    operator: Name | None = None
    hlc: HLCText
    ops: list[dict[str, Any]] = Field(max_length=HARD_MAX_OPERATIONS)
    """Raw JSON objects, read one by one with :func:`~campsync_sync.operations.read_operation`."""
    backlog: int = Field(default=0, ge=0)
    """Operations still waiting on the tablet after this batch; coordinators see it."""

    @classmethod
    def of(
        cls,
        *,
        batch_id: uuid.UUID,
        device_id: uuid.UUID,
        seq: int,
        hlc: str,
        ops: Sequence[Operation],
        operator: str | None = None,
        backlog: int = 0,
    ) -> Batch:
        """Build a batch from validated operations."""
        return cls(
            batch_id=batch_id,
            device_id=device_id,
            seq=seq,
            hlc=hlc,
            operator=operator,
            # Defaults are left out (a tenth of a typical batch is ``"base": null``); the
            # discriminator stays, since it has a default too.
            ops=[{"op": op.op} | op.model_dump(mode="json", exclude_defaults=True) for op in ops],
            backlog=backlog,
        )


# --------------------------------------------------------------------------- receipts


class Outcome(StrEnum):
    """What became of one operation."""

    APPLIED = "applied"
    """Taken as is: a new record, a fast-forward edit, a new event, or a duplicate replay."""
    MERGED = "merged"
    """Concurrent with other edits and merged silently (per-field or per-element)."""
    CONFLICT = "conflict"
    """Merged, and a conflict record was opened for a coordinator to review."""
    FLAGGED = "flagged"
    """Accepted and flagged (possible double distribution, clock clamped)."""
    REJECTED = "rejected"
    """Not applied; ``reason`` says why and the operation is kept in quarantine."""


class RejectReason(StrEnum):
    """Why an operation was rejected."""

    INVALID_OPERATION = "invalid_operation"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    DUPLICATE_OP = "duplicate_op"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_VALUE = "invalid_value"
    OUT_OF_SCOPE = "out_of_scope"
    UNKNOWN_HOUSEHOLD = "unknown_household"
    UNKNOWN_TARGET = "unknown_target"
    ID_REUSED = "id_reused"
    ERASED = "erased"
    DEVICE_REVOKED = "device_revoked"


class OpResult(WireModel):
    """The outcome of one operation, in batch order.

    ``detail`` names the offending field or rule, never a value: receipts carry no personal data.
    """

    index: int = Field(ge=0)
    op_id: uuid.UUID | None = None
    outcome: Outcome
    reason: RejectReason | None = None
    detail: Annotated[str, StringConstraints(max_length=200)] | None = None
    conflict_ids: list[uuid.UUID] = Field(default_factory=list)
    flag_ids: list[uuid.UUID] = Field(default_factory=list)

    @model_validator(mode="after")
    def _reason_iff_rejected(self) -> OpResult:
        if (self.outcome is Outcome.REJECTED) != (self.reason is not None):
            raise ValueError("a rejected operation has a reason, and only a rejected one")
        return self


class BatchStatus(StrEnum):
    """What the server did with a whole batch."""

    APPLIED = "applied"
    QUARANTINED = "quarantined"


class Receipt(WireModel):
    """The server's answer to a batch, stored and replayed identically on every retry."""

    protocol: Version = PROTOCOL_VERSION
    schema_version: Version = SCHEMA_VERSION
    batch_id: uuid.UUID
    device_id: uuid.UUID
    seq: Seq
    status: BatchStatus
    next_seq: Seq
    commit_seq: Seq | None = None
    server_hlc: HLCText
    received_at: AwareDatetime
    results: list[OpResult] = Field(default_factory=list)
    wipe: bool = False


# --------------------------------------------------------------------------- pull


class SetElement(WireModel):
    """The merged state of one element of a set field."""

    present: bool
    hlc: HLCText


class RowState(WireModel):
    """The current state of one record, as pulled by a tablet.

    Registry records carry per-field clocks and set elements; events carry only values.
    A tombstone has ``deleted`` later than ``restored``; an erased record has no values.
    """

    entity: Entity
    id: uuid.UUID
    seq: Seq
    values: dict[str, JsonValue] = Field(default_factory=dict)
    clocks: dict[str, HLCText] = Field(default_factory=dict)
    sets: dict[str, dict[str, SetElement]] = Field(default_factory=dict)
    deleted: HLCText | None = None
    restored: HLCText | None = None
    erased: bool = False

    @property
    def is_deleted(self) -> bool:
        """Whether the record is a tombstone (an erased record always is)."""
        if self.erased:
            return True
        return self.deleted is not None and (self.restored is None or self.deleted > self.restored)


class PullPage(WireModel):
    """A page of changes in the device's scope after ``cursor``."""

    protocol: Version = PROTOCOL_VERSION
    schema_version: Version = SCHEMA_VERSION
    camp_id: str
    cursor: Seq
    next_cursor: Seq
    has_more: bool
    server_hlc: HLCText
    changes: list[RowState] = Field(default_factory=list)


# --------------------------------------------------------------------------- keys, enrolment


class KeyInfo(WireModel):
    """A public key of the server, with its id and validity."""

    kid: Name
    suite: Name
    public_key: Base64
    not_before: AwareDatetime
    not_after: AwareDatetime | None = None
    status: Literal["active", "retired"] = "active"


class KeyManifest(WireModel):
    """The server's public keys: the long-lived signing key and the transport keys."""

    protocol: Version = PROTOCOL_VERSION
    deployment_id: Name
    issued_at: AwareDatetime
    signing_key: KeyInfo
    transport_keys: list[KeyInfo]


class SignedManifest(WireModel):
    """A manifest as the exact JSON text that was signed, and its Ed25519 signature."""

    payload: Annotated[str, StringConstraints(max_length=65536)]
    signature: Base64


class EnrollmentInvite(WireModel):
    """What an enrolment QR code carries: where to enrol and which server key to trust."""

    protocol: Version = PROTOCOL_VERSION
    server_url: Annotated[str, StringConstraints(max_length=2048)]
    deployment_id: Name
    code: Name
    server_key_fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    """:func:`~campsync_sync.keys.fingerprint` of the server signing key (79 characters)."""
    expires_at: AwareDatetime


class EnrollmentRequest(WireModel):
    """A tablet asks to join: the code, its public keys, and proof it holds the signing key."""

    protocol: Version = PROTOCOL_VERSION
    schema_version: Version = SCHEMA_VERSION
    code: Name
    device_name: Annotated[str, StringConstraints(max_length=64, pattern=_NO_CONTROLS)] | None = (
        None
    )
    signing_key: Base64
    exchange_key: Base64
    proof: Base64


class EnrollmentResponse(WireModel):
    """The device's identity and scope, and the signed manifest of server keys."""

    protocol: Version = PROTOCOL_VERSION
    schema_version: Version = SCHEMA_VERSION
    device_id: uuid.UUID
    camp_id: str
    deployment_id: Name
    next_seq: Seq
    server_hlc: HLCText
    manifest: SignedManifest


class ChallengeRequest(WireModel):
    """A device asks for a challenge to sign."""

    device_id: uuid.UUID


class ChallengeResponse(WireModel):
    """A short-lived challenge; the device signs it to obtain a pull token."""

    challenge: Name
    expires_at: AwareDatetime


class TokenRequest(WireModel):
    """A signed challenge, exchanged for a short-lived device token."""

    device_id: uuid.UUID
    challenge: Name
    signature: Base64


class DeviceToken(WireModel):
    """A short-lived bearer token bound to one device; nothing long-lived lives on a tablet."""

    token: Annotated[str, StringConstraints(max_length=512)]
    expires_at: AwareDatetime
