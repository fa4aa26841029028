"""Pushed batches: check, merge, acknowledge. Shared by the HTTP route and ``import-batches``.

Checks run cheapest first and touch the database as late as possible: size, framing, version,
suite, deployment, device, signature, stored receipt, seq, recipient key, decryption, bounded
decompression, validation. Only then does one write transaction merge the batch, advance the
device's seq and store the receipt, so an acknowledged batch is never lost nor applied twice.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from campsync_sync import (
    PROTOCOL_VERSION,
    BadEnvelope,
    BadPlaintext,
    Batch,
    BatchStatus,
    EnvelopeHeader,
    ErrorCode,
    Receipt,
    SealedEnvelope,
    UnknownKey,
    UnsupportedVersion,
    key_id,
    load_signing_public,
    parse_envelope,
    seal,
    uuid7,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import JsonValue, ValidationError
from sqlalchemy import Engine, Row, bindparam, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, col

from api import clock
from api.audit import service as audit
from api.config import Settings
from api.db import read_session, write_session
from api.devices.models import Device
from api.devices.service import DeviceUnknown, revoked_error
from api.errors import DomainError
from api.registry import bulk, store
from api.sync.keys import Keyring, KeySet
from api.sync.merge import BatchMerger
from api.sync.models import Batch as BatchRow
from api.sync.models import Quarantine
from api.sync.prepare import Clamper, Prepared, parse_typed, prepare
from api.types import utcnow

MAX_QUARANTINED_BATCHES: Final = 1000
"""Per revoked device: a thief cannot fill the disk by pushing forever."""
RETRY_AFTER_SECONDS: Final = "2"
_RETRIES: Final = 3
_RETRYABLE_SQLSTATES: Final = frozenset({"40001", "40P01"})  # serialization failure, deadlock
# Core, not the unit of work, for the few rows a push reads and writes besides the registry:
# at 500 operations a batch the ORM's fixed cost was a tenth of the push, at 50 a half.
_BATCHES: Final = BatchRow.__table__  # type: ignore[attr-defined]
_DEVICES: Final = Device.__table__  # type: ignore[attr-defined]
StoredBatch = Row[tuple[uuid.UUID, str, dict[str, Any]]]
_STORED_BATCH: Final = select(_BATCHES.c.device_id, _BATCHES.c.digest, _BATCHES.c.receipt).where(
    _BATCHES.c.id == bindparam("batch_id")
)
_LOCK_DEVICE: Final = (
    select(_DEVICES.c.status, _DEVICES.c.last_seq)
    .where(_DEVICES.c.id == bindparam("device_id"))
    .with_for_update()
)
_ADVANCE_DEVICE: Final = (
    update(_DEVICES)
    .where(_DEVICES.c.id == bindparam("device_id"))
    .values(
        last_seq=bindparam("last_seq"),
        last_batch_id=bindparam("last_batch_id"),
        last_sync_at=bindparam("last_sync_at"),
    )
)


class Busy(DomainError):
    code = ErrorCode.SERVICE_UNAVAILABLE

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": RETRY_AFTER_SECONDS})


def _error(code: ErrorCode, message: str, details: JsonValue = None) -> DomainError:
    return DomainError(message, details, code=code)


@dataclass(frozen=True, slots=True)
class PushResult:
    envelope: bytes
    """The sealed receipt."""
    receipt: Receipt
    replayed: bool
    """The batch was applied before: nothing was applied this time."""


# Same batch twice at once in this process: the second is told to come back. Across
# processes the device row lock serialises them, and the second finds the receipt.
_in_flight: set[uuid.UUID] = set()
_in_flight_lock = threading.Lock()


@contextmanager
def _claim(batch_id: uuid.UUID) -> Iterator[None]:
    with _in_flight_lock:
        if batch_id in _in_flight:
            raise DomainError(
                "this batch is being processed: retry soon",
                code=ErrorCode.BATCH_IN_FLIGHT,
                headers={"Retry-After": "1"},
            )
        _in_flight.add(batch_id)
    try:
        yield
    finally:
        with _in_flight_lock:
            _in_flight.discard(batch_id)


def seal_for_device(
    keys: KeySet,
    device: Device,
    *,
    typ: Literal["pull", "receipt"],
    batch: uuid.UUID,
    seq: int,
    plaintext: bytes,
) -> bytes:
    """Seal a server message to a device's exchange key, signed by the server."""
    header = EnvelopeHeader(
        typ=typ,
        aud=keys.deployment_id,
        snd="server",
        skid=keys.signing_kid,
        rkid=key_id(device.exchange_key),
        batch=batch,
        seq=seq,
        len=0,
    )
    return seal(
        plaintext,
        header,
        recipient_key=X25519PublicKey.from_public_bytes(device.exchange_key),
        signing_key=keys.signing_key,
    )


def _receipt_envelope(keys: KeySet, device: Device, receipt: Receipt) -> bytes:
    return seal_for_device(
        keys,
        device,
        typ="receipt",
        batch=receipt.batch_id,
        seq=receipt.seq,
        plaintext=receipt.model_dump_json().encode(),
    )


def _stored_batch(session: Session, batch_id: uuid.UUID) -> StoredBatch | None:
    """The device, digest and receipt of a batch already accepted, if it was."""
    row: StoredBatch | None = session.execute(_STORED_BATCH, {"batch_id": batch_id}).first()
    return row


def _stored(keys: KeySet, device: Device, row: StoredBatch, digest: str) -> PushResult:
    if row.device_id != device.id or row.digest != digest:
        raise _error(
            ErrorCode.BATCH_MISMATCH, "this batch id was already used for a different envelope"
        )
    receipt = Receipt.model_validate(row.receipt)
    return PushResult(_receipt_envelope(keys, device, receipt), receipt, replayed=True)


def _check_seq(engine: Engine, device: Device, header: EnvelopeHeader) -> None:
    expected = device.last_seq + 1
    if header.seq > expected:
        raise _error(
            ErrorCode.SEQ_GAP,
            "a batch before this one is missing: send it first",
            {"expected_seq": expected},
        )
    if header.seq < expected:
        # Another batch already holds this seq: a cloned or restored tablet.
        with write_session(engine) as session:
            audit.append(
                session,
                actor_type="device",
                actor_id=str(device.id),
                action="sync.seq_reused",
                camp_id=device.camp_id,
                entity="batch",
                entity_id=header.batch,
                details={"seq": header.seq, "expected_seq": expected},
            )
        raise _error(
            ErrorCode.SEQ_REUSED,
            "this seq was already used by another batch of this device",
            {"expected_seq": expected},
        )


def _quarantine_revoked(engine: Engine, device: Device, batch_id: uuid.UUID, data: bytes) -> None:
    """Keep a revoked device's batch unopened: pre-theft registrations, or forgeries."""
    with write_session(engine) as session:
        known = session.execute(
            select(func.count()).where(
                col(Quarantine.device_id) == device.id, col(Quarantine.op_index).is_(None)
            )
        ).scalar_one()
        duplicate = session.execute(
            select(col(Quarantine.id)).where(
                col(Quarantine.device_id) == device.id, col(Quarantine.batch_id) == batch_id
            )
        ).first()
        if duplicate is None and known < MAX_QUARANTINED_BATCHES:
            session.add(
                Quarantine(
                    device_id=device.id, batch_id=batch_id, reason="device_revoked", payload=data
                )
            )


def _open(keyring: Keyring, keys: KeySet, sealed: SealedEnvelope) -> bytes:
    try:
        key = keys.recipient(sealed.header.rkid)
    except UnknownKey:
        # Perhaps another process rotated keys a moment ago.
        key = keyring.refresh().recipient(sealed.header.rkid)
    assert key.pair is not None  # noqa: S101 - recipient() refuses destroyed keys
    return sealed.decrypt(key.pair.private_key())


def _parse_batch(
    settings: Settings, plaintext: bytes, header: EnvelopeHeader, device: Device
) -> Batch:
    # The common case, a batch with no bad operation, is read in one pass; anything else is
    # read again step by step to say what is wrong with it.
    batch: Batch | None = parse_typed(plaintext)
    if batch is None:
        batch = _parse_loose(settings, plaintext)
    if len(batch.ops) > settings.max_operations_per_batch:
        raise _too_many(settings)
    if batch.protocol != PROTOCOL_VERSION:
        raise UnsupportedVersion("the batch's protocol version is not supported")
    if (batch.batch_id, batch.device_id, batch.seq) != (header.batch, device.id, header.seq):
        raise BadPlaintext("the batch's id, device or seq differs from its envelope's")
    return batch


def _too_many(settings: Settings) -> DomainError:
    return _error(
        ErrorCode.TOO_MANY_OPERATIONS,
        "the batch holds too many operations: split it",
        {"limit": settings.max_operations_per_batch},
    )


def _parse_loose(settings: Settings, plaintext: bytes) -> Batch:
    """A batch with some invalid operation: its operations stay raw, to be judged one by one."""
    try:
        raw = orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        raise BadPlaintext("the batch is not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("ops"), list):
        raise BadPlaintext("the batch has no list of operations")
    if len(raw["ops"]) > settings.max_operations_per_batch:
        raise _too_many(settings)
    if raw.get("protocol") != PROTOCOL_VERSION:
        raise UnsupportedVersion("the batch's protocol version is not supported")
    try:
        return Batch.model_validate(raw)
    except ValidationError:
        raise BadPlaintext("the batch does not match the Batch schema") from None


def _authenticate(session: Session, sealed: SealedEnvelope) -> Device:
    try:
        device_id = uuid.UUID(sealed.header.snd)
    except ValueError:
        raise DeviceUnknown("unknown device") from None
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceUnknown("unknown device")
    if sealed.header.skid != device.key_id:
        raise UnknownKey("the envelope is signed with a key this device did not enrol")
    sealed.verify(load_signing_public(device.signing_key))
    return device


class _Recheck(Exception):
    """The device moved on while this push waited for its lock: look again."""


def _precheck(
    engine: Engine, keys: KeySet, sealed: SealedEnvelope, data: bytes, digest: str
) -> Device | PushResult:
    """Authenticate, then answer from the stored receipt or refuse the seq; else the device."""
    with Session(engine, expire_on_commit=False) as session:
        device = _authenticate(session, sealed)
        stored = _stored_batch(session, sealed.header.batch)
    # Reads only so far: the writes below take the write lock on their own.
    if device.status != "active":
        _quarantine_revoked(engine, device, sealed.header.batch, data)
        raise revoked_error(keys, device.id)
    if stored is not None:
        return _stored(keys, device, stored, digest)
    _check_seq(engine, device, sealed.header)
    return device


def push_batch(
    *,
    engine: Engine,
    settings: Settings,
    keyring: Keyring,
    batch_id: uuid.UUID,
    data: bytes,
) -> PushResult:
    """Check, merge and acknowledge one sealed batch; the same batch again gets its receipt.

    Raises:
        campsync_sync.EnvelopeError, DomainError: whole-batch refusals, each with its code.
    """
    keys = keyring.current()
    sealed = parse_envelope(
        data,
        deployment_id=keys.deployment_id,
        max_bytes=settings.max_envelope_bytes,
        max_plaintext=settings.max_plaintext_bytes,
    )
    header = sealed.header
    if header.typ != "push":
        raise BadEnvelope("not a push envelope")
    if header.batch != batch_id:
        raise BadEnvelope("the envelope's batch id differs from the one in the path")
    digest = hashlib.sha256(data).hexdigest()
    checked = _precheck(engine, keys, sealed, data, digest)
    if isinstance(checked, PushResult):
        return checked
    device = checked
    with _claim(batch_id):
        batch = _parse_batch(settings, _open(keyring, keys, sealed), header, device)
        clamper = Clamper(now=clock.now, skew_ms=settings.clock_skew_seconds * 1000)
        prepared = prepare(batch, clamper)
        for attempt in range(_RETRIES):
            try:
                return _apply(engine, settings, keys, device, header, batch, prepared, digest)
            except (_Recheck, IntegrityError):
                # A concurrent push of this batch or seq won the race: answer as it left things.
                checked = _precheck(engine, keys, sealed, data, digest)
                if isinstance(checked, PushResult):
                    return checked
            except DBAPIError as exc:
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if sqlstate in _RETRYABLE_SQLSTATES and attempt < _RETRIES - 1:
                    continue
                if isinstance(exc, OperationalError):
                    raise Busy("the database is busy: retry later") from None
                raise
    raise Busy("the batch could not be applied: retry later")


@dataclass(slots=True)
class _Draft:
    seq: int
    """The last commit seq the merge's snapshot held."""
    merger: BatchMerger


def _draft(engine: Engine, device: Device, batch: Batch, prepared: list[Prepared]) -> _Draft | None:
    """On SQLite, merge in a read snapshot before taking the writer's turn.

    Writers take turns on SQLite, so everything done while holding the turn limits how many
    batches a second can land. Loading and merging need no turn: under it, the draft is kept
    if the change log shows nothing it read changed since its snapshot (the usual case:
    concurrent tablets register different households), and is merged again otherwise.
    PostgreSQL writers do not take turns: they lock the rows they merge.
    """
    if engine.dialect.name != "sqlite":
        return None
    with read_session(engine) as session:
        seq = store.commit_seq(session)  # the snapshot starts here, before the loads
        merger = BatchMerger(session, device=device, batch=batch, prepared=prepared, now=utcnow())
        merger.merge()
    return _Draft(seq, merger)


def _apply(
    engine: Engine,
    settings: Settings,
    keys: KeySet,
    device: Device,
    header: EnvelopeHeader,
    batch: Batch,
    prepared: list[Prepared],
    digest: str,
) -> PushResult:
    draft = _draft(engine, device, batch, prepared)
    with write_session(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            timeout = max(1, int(settings.request_timeout_seconds * 1000))
            session.execute(text(f"SET LOCAL lock_timeout = {timeout}"))
        locked = session.execute(_LOCK_DEVICE, {"device_id": device.id}).one()
        # Re-check under the lock: a concurrent push may have landed since the first look.
        if locked.status != "active":
            raise revoked_error(keys, device.id)
        stored = _stored_batch(session, batch.batch_id)
        if stored is not None:
            return _stored(keys, device, stored, digest)
        if header.seq != locked.last_seq + 1:
            raise _Recheck
        now = utcnow()
        if draft is not None and not draft.merger.read_since(session, draft.seq):
            merged = draft.merger.write(session, now)
        else:
            merger = BatchMerger(session, device=device, batch=batch, prepared=prepared, now=now)
            merged = merger.run()
        if merged.max_hlc is not None:
            clock.receive(merged.max_hlc)
        session.execute(
            _ADVANCE_DEVICE,
            {
                "device_id": device.id,
                "last_seq": batch.seq,
                "last_batch_id": batch.batch_id,
                "last_sync_at": now,
            },
        )
        audit.append(
            session,
            actor_type="device",
            actor_id=str(device.id),
            action="sync.batch_applied",
            camp_id=device.camp_id,
            entity="batch",
            entity_id=batch.batch_id,
            details={"seq": batch.seq, "ops": len(batch.ops), **merged.counts},
        )
        commit_seq = None
        if merged.changes:
            # The last step: the counter row stays locked until commit (commit order).
            commit_seq = store.allocate_commit_seq(session)
            store.append_changes(session, commit_seq, merged.changes, now=now)
        receipt = Receipt.model_validate(
            {
                "batch_id": batch.batch_id,
                "device_id": device.id,
                "seq": batch.seq,
                "status": BatchStatus.APPLIED,
                "next_seq": batch.seq + 1,
                "commit_seq": commit_seq,
                "server_hlc": str(clock.now()),
                "received_at": now,
                "results": merged.results,
            }
        )
        row = {
            "id": batch.batch_id,
            "device_id": device.id,
            "seq": batch.seq,
            "digest": digest,
            "status": BatchStatus.APPLIED.value,
            "op_count": len(batch.ops),
            "backlog": batch.backlog,
            "commit_seq": commit_seq,
            # Defaults left out: half the size, and the same Receipt when read back. Stored
            # as pydantic wrote it, with no round trip through Python objects.
            "receipt": orjson.Fragment(receipt.model_dump_json(exclude_defaults=True)),
            "received_at": now,
        }
        bulk.write(session, _BATCHES, [row])
    return PushResult(_receipt_envelope(keys, device, receipt), receipt, replayed=False)


def stored_receipt(*, session: Session, keys: KeySet, device: Device, batch_id: uuid.UUID) -> bytes:
    """The receipt of one of this device's batches, sealed afresh to it."""
    row = _stored_batch(session, batch_id)
    if row is None or row.device_id != device.id:
        raise _error(ErrorCode.RECEIPT_NOT_FOUND, "no receipt for this batch")
    return _receipt_envelope(keys, device, Receipt.model_validate(row.receipt))


def new_message_id() -> uuid.UUID:
    return uuid7()
