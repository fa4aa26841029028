"""Tablets: enrolment codes, enrolment, the device list, revocation, and device tokens.

A tablet holds no shared secret. It proves possession of its signing key at enrolment and
whenever it asks for a token: it signs a challenge the server made. Challenges and tokens are
stateless (HMAC with a key derived from the server's signing key), so every worker accepts
what another issued; the device row is read on every use, so a revocation applies at once.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import uuid

from campsync_sync import (
    PROTOCOL_VERSION,
    BadSignature,
    ChallengeResponse,
    DeviceToken,
    EnrollmentInvite,
    EnrollmentRequest,
    EnrollmentResponse,
    ErrorCode,
    TokenRequest,
    UnknownKey,
    b64decode,
    b64encode,
    enrollment_proof_message,
    key_id,
    load_signing_public,
    node_id_for,
    sign_statement,
    uuid7,
    verify_statement,
    wipe_statement,
)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import JsonValue
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from api import clock
from api.audit import service as audit
from api.camps.models import Camp
from api.config import Settings
from api.devices.models import Device, EnrollmentCode
from api.devices.schemas import DevicePublic, EnrollmentCodePublic
from api.errors import DomainError, InvalidInput, NotFound, Unauthenticated
from api.principal import Principal, Role
from api.security import hash_token, new_code
from api.sync.keys import KeySet
from api.sync.models import Batch, Quarantine
from api.types import utcnow

CHALLENGE_TTL = dt.timedelta(minutes=2)
_TOKEN_PREFIX = "cdt1"  # noqa: S105 - a format marker, not a secret


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
    if code is None or code.used_at is not None or code.expires_at <= now:
        raise invalid
    message = enrollment_proof_message(request.code, keys.deployment_id, signing, exchange)
    try:
        load_signing_public(signing).verify(b64decode(request.proof), message)
    except (InvalidSignature, ValueError):
        raise DomainError(
            "the proof of possession does not verify", code=ErrorCode.PROOF_INVALID
        ) from None
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
    return EnrollmentResponse(
        device_id=device_id,
        camp_id=code.camp_id,
        deployment_id=keys.deployment_id,
        next_seq=1,
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


# --------------------------------------------------------------------------- tokens


def load_device(session: Session, device_id: uuid.UUID) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise DeviceUnknown("unknown device", headers={"WWW-Authenticate": "Bearer"})
    return device


def active_device(session: Session, keys: KeySet, device_id: uuid.UUID) -> Device:
    device = load_device(session, device_id)
    if device.status != "active":
        raise revoked_error(keys, device.id)
    return device


def issue_challenge(*, session: Session, keys: KeySet, device_id: uuid.UUID) -> ChallengeResponse:
    """A challenge for the device to sign; stateless, valid two minutes."""
    active_device(session, keys, device_id)
    expires = utcnow() + CHALLENGE_TTL
    stamp = str(int(expires.timestamp()))
    nonce = secrets.token_urlsafe(12)
    challenge = f"{stamp}.{nonce}.{keys.mac('challenge', str(device_id), stamp, nonce)}"
    return ChallengeResponse(challenge=challenge, expires_at=expires)


def _fresh(stamp: str) -> bool:
    return stamp.isdigit() and int(stamp) > utcnow().timestamp()


def issue_token(
    *, session: Session, keys: KeySet, settings: Settings, request: TokenRequest
) -> DeviceToken:
    """Exchange a signed challenge for a short-lived device token."""
    device = active_device(session, keys, request.device_id)
    refused = Unauthenticated("the challenge or its signature is invalid")
    parts = request.challenge.split(".")
    if len(parts) != 3 or not _fresh(parts[0]):
        raise refused
    stamp, nonce, mac = parts
    expected = keys.mac("challenge", str(device.id), stamp, nonce)
    if not hmac.compare_digest(mac, expected):
        raise refused
    statement = f"{keys.deployment_id}\0{device.id}\0{request.challenge}".encode()
    try:
        verify_statement(
            load_signing_public(device.signing_key),
            "device-token",
            statement,
            request.signature,
        )
    except BadSignature:
        raise refused from None
    expires = utcnow() + dt.timedelta(seconds=settings.device_token_ttl_seconds)
    exp = str(int(expires.timestamp()))
    token = f"{_TOKEN_PREFIX}.{device.id.hex}.{exp}.{keys.mac('token', device.id.hex, exp)}"
    return DeviceToken(token=token, expires_at=expires)


def authenticate_device(*, session: Session, keys: KeySet, token: str) -> Device:
    """The device a token was issued to; revoked devices are refused with their wipe order."""
    refused = Unauthenticated("invalid or expired device token")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != _TOKEN_PREFIX or not _fresh(parts[2]):
        raise refused
    _, device_hex, exp, mac = parts
    if not hmac.compare_digest(mac, keys.mac("token", device_hex, exp)):
        raise refused
    try:
        device_id = uuid.UUID(hex=device_hex)
    except ValueError:
        raise refused from None
    return active_device(session, keys, device_id)


def touch_pull(session: Session, device: Device) -> None:
    """Record when a device last pulled, at most once a minute, so pulls stay reads.

    Best effort: a busy database must not turn a pull into a failure.
    """
    now = utcnow()
    if device.last_pull_at is not None and now - device.last_pull_at < dt.timedelta(minutes=1):
        return
    session.commit()  # end the pull's read snapshot: the update starts from a fresh one
    try:
        session.execute(update(Device).where(col(Device.id) == device.id).values(last_pull_at=now))
        session.commit()
    except OperationalError:
        session.rollback()
