"""Tablets: enrolment codes, enrolment, the device list, revocation.

A tablet holds no shared secret: it proves possession of its signing key at enrolment, and
whenever it asks for a token (``api.devices.tokens``).
"""

from __future__ import annotations

import datetime as dt
import uuid

from campsync_sync import (
    PROTOCOL_VERSION,
    EnrollmentInvite,
    EnrollmentRequest,
    EnrollmentResponse,
    ErrorCode,
    UnknownKey,
    b64decode,
    b64encode,
    enrollment_proof_message,
    key_id,
    load_signing_public,
    node_id_for,
    sign_statement,
    uuid7,
    wipe_statement,
)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import JsonValue
from sqlalchemy import func, select, update
from sqlmodel import Session, col

from api import clock
from api.audit import service as audit
from api.camps.models import Camp
from api.config import Settings
from api.devices.models import Device, EnrollmentCode
from api.devices.schemas import DevicePublic, EnrollmentCodePublic
from api.errors import DomainError, InvalidInput, NotFound
from api.principal import Principal, Role
from api.security import hash_token, new_code
from api.sync.keys import KeySet
from api.sync.models import Batch, Quarantine
from api.types import utcnow


class DeviceRevoked(DomainError):
    code = ErrorCode.DEVICE_REVOKED


class DeviceUnknown(DomainError):
    code = ErrorCode.DEVICE_UNKNOWN


def wipe_order(keys: KeySet, device_id: uuid.UUID) -> dict[str, str]:
    """The signed order a revoked tablet obeys once it verifies it with its pinned key."""
    return {
        "deployment_id": keys.deployment_id,
        "device_id": str(device_id),
        "signature": sign_statement(
            keys.signing_key, "wipe", wipe_statement(keys.deployment_id, device_id)
        ),
    }


def revoked_error(keys: KeySet, device_id: uuid.UUID) -> DeviceRevoked:
    wipe: dict[str, JsonValue] = dict(wipe_order(keys, device_id))
    return DeviceRevoked("this device was revoked: wipe it", {"wipe": wipe})


# --------------------------------------------------------------------------- enrolment


def create_enrollment_code(
    *,
    session: Session,
    settings: Settings,
    keys: KeySet,
    camp_id: str,
    ttl_minutes: int | None,
    actor: str,
    created_by: uuid.UUID | None = None,
) -> EnrollmentCodePublic:
    """A single-use code that enrols one tablet into ``camp_id``; only its hash is stored."""
    if session.get(Camp, camp_id) is None:
        raise NotFound("camp not found")
    code = new_code()
    expires_at = utcnow() + dt.timedelta(
        minutes=ttl_minutes or settings.enrollment_code_ttl_minutes
    )
    row = EnrollmentCode(
        code_hash=hash_token(code), camp_id=camp_id, created_by=created_by, expires_at=expires_at
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor_type="user" if actor.startswith("user:") else "system",
        actor_id=actor,
        action="device.enrollment_code",
        camp_id=camp_id,
        entity="enrollment_code",
        entity_id=row.id,
        details={"expires_at": expires_at.isoformat()},
    )
    session.commit()
    invite = EnrollmentInvite(
        server_url=settings.public_url,
        deployment_id=keys.deployment_id,
        code=code,
        server_key_fingerprint=keys.fingerprint,
        expires_at=expires_at,
    )
    return EnrollmentCodePublic(
        code=code,
        camp_id=camp_id,
        expires_at=expires_at,
        invite=invite,
        qr_payload=invite.model_dump_json(),
    )


def _public_keys(request: EnrollmentRequest) -> tuple[bytes, bytes]:
    try:
        signing = b64decode(request.signing_key)
        exchange = b64decode(request.exchange_key)
        load_signing_public(signing)
        X25519PublicKey.from_public_bytes(exchange)
    except (ValueError, UnknownKey):
        raise InvalidInput(
            "signing_key must be a raw Ed25519 and exchange_key a raw X25519 public key"
        ) from None
    return signing, exchange


def enroll_device(
    *, session: Session, keys: KeySet, request: EnrollmentRequest
) -> EnrollmentResponse:
    """Enrol a tablet with a one-time code and proof that it holds its signing key."""
    if request.protocol != PROTOCOL_VERSION:
        raise DomainError(
            f"protocol {request.protocol} is not supported", code=ErrorCode.UNSUPPORTED_VERSION
        )
    signing, exchange = _public_keys(request)
    now = utcnow()
    code = session.execute(
        select(EnrollmentCode).where(col(EnrollmentCode.code_hash) == hash_token(request.code))
    ).scalar_one_or_none()
    # Unknown, used and expired codes get one answer, so that none can be told apart.
    invalid = DomainError(
        "the enrolment code is unknown, used or expired", code=ErrorCode.ENROLLMENT_CODE_INVALID
    )
    if code is None or code.expires_at <= now:
        raise invalid
    message = enrollment_proof_message(request.code, keys.deployment_id, signing, exchange)
    proven = _proves(signing, request.proof, message)
    if code.used_at is not None:
        # The same tablet again, whose answer was lost: the same answer. Anyone else learns
        # nothing, not even that the code was used.
        device = session.get(Device, code.device_id) if code.device_id else None
        if device is None or not proven or device.status != "active":
            raise invalid
        if (device.signing_key, device.exchange_key) != (signing, exchange):
            raise invalid
        audit.append(
            session,
            actor_type="device",
            actor_id=str(device.id),
            action="device.enroll_repeated",
            camp_id=device.camp_id,
            entity="device",
            entity_id=device.id,
            details={"key_id": device.key_id, "enrollment_code": str(code.id)},
        )
        session.commit()
        return _enrolled(keys, device)
    if not proven:
        raise DomainError("the proof of possession does not verify", code=ErrorCode.PROOF_INVALID)
    device_id = uuid7()
    # Consume the code atomically: of two tablets racing with one code, one wins.
    consumed = session.execute(
        update(EnrollmentCode)
        .where(col(EnrollmentCode.id) == code.id, col(EnrollmentCode.used_at).is_(None))
        .values(used_at=now, device_id=device_id)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise invalid
    session.add(
        Device(
            id=device_id,
            camp_id=code.camp_id,
            name=request.device_name,
            signing_key=signing,
            exchange_key=exchange,
            key_id=key_id(signing),
            node=f"{node_id_for(device_id):016x}",
            enrolled_at=now,
            enrolled_by=code.created_by,
        )
    )
    session.flush()
    audit.append(
        session,
        actor_type="device",
        actor_id=str(device_id),
        action="device.enroll",
        camp_id=code.camp_id,
        entity="device",
        entity_id=device_id,
        details={"key_id": key_id(signing), "enrollment_code": str(code.id)},
    )
    session.commit()
    device = session.get(Device, device_id)
    assert device is not None  # noqa: S101 - added above
    return _enrolled(keys, device)


def _proves(signing: bytes, proof: str, message: bytes) -> bool:
    try:
        load_signing_public(signing).verify(b64decode(proof), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _enrolled(keys: KeySet, device: Device) -> EnrollmentResponse:
    return EnrollmentResponse(
        device_id=device.id,
        camp_id=device.camp_id,
        deployment_id=keys.deployment_id,
        next_seq=device.last_seq + 1,
        server_hlc=str(clock.now()),
        manifest=keys.manifest(),
    )


# --------------------------------------------------------------------------- list, revoke


def list_devices(
    *, session: Session, principal: Principal, camp_id: str | None
) -> list[DevicePublic]:
    """Devices of one camp (or of every camp the caller sees), with their sync state."""
    query = (
        select(Device, col(Batch.backlog))
        .outerjoin(Batch, col(Batch.id) == col(Device.last_batch_id))
        .order_by(col(Device.enrolled_at), col(Device.id))
    )
    if camp_id is not None:
        principal.require_camp(camp_id)
        query = query.where(col(Device.camp_id) == camp_id)
    elif principal.camps is not None:
        query = query.where(col(Device.camp_id).in_(sorted(principal.camps)))
    rows = session.execute(query).all()
    ids = [device.id for device, _ in rows]
    counts: dict[uuid.UUID, tuple[int, int]] = {}
    if ids:
        whole = func.count(func.distinct(Quarantine.batch_id)).filter(
            col(Quarantine.op_index).is_(None)
        )
        ops = func.count().filter(col(Quarantine.op_index).is_not(None))
        for device_id, batches, rejected in session.execute(
            select(col(Quarantine.device_id), whole, ops)
            .where(col(Quarantine.device_id).in_(ids))
            .group_by(col(Quarantine.device_id))
        ):
            counts[device_id] = (batches, rejected)
    with_keys = principal.role in (Role.ADMIN, Role.COORDINATOR)
    return [
        _public(device, backlog or 0, counts.get(device.id, (0, 0)), with_keys=with_keys)
        for device, backlog in rows
    ]


def _public(
    device: Device, backlog: int, counts: tuple[int, int], *, with_keys: bool
) -> DevicePublic:
    return DevicePublic(
        id=device.id,
        camp_id=device.camp_id,
        name=device.name,
        status=device.status,
        key_id=device.key_id,
        signing_key=b64encode(device.signing_key) if with_keys else None,
        exchange_key=b64encode(device.exchange_key) if with_keys else None,
        enrolled_at=device.enrolled_at,
        revoked_at=device.revoked_at,
        last_sync_at=device.last_sync_at,
        last_pull_at=device.last_pull_at,
        last_seq=device.last_seq,
        backlog=backlog,
        quarantined_batches=counts[0],
        rejected_operations=counts[1],
    )


def revoke_device(
    *, session: Session, device_id: uuid.UUID, principal: Principal | None, actor: str
) -> DevicePublic:
    """Revoke a tablet: its tokens stop working at once, its later batches are quarantined."""
    device = session.execute(
        select(Device).where(col(Device.id) == device_id).with_for_update()
    ).scalar_one_or_none()
    if device is None:
        raise NotFound("device not found")
    if principal is not None:
        principal.require_camp(device.camp_id, what="device")
    if device.status != "revoked":
        device.status = "revoked"
        device.revoked_at = utcnow()
        device.revoked_by = principal.user_id if principal is not None else None
        session.add(device)
        session.flush()
        audit.append(
            session,
            actor_type="user" if actor.startswith("user:") else "system",
            actor_id=actor,
            action="device.revoke",
            camp_id=device.camp_id,
            entity="device",
            entity_id=device.id,
        )
    session.commit()
    return _public(device, 0, (0, 0), with_keys=False)
