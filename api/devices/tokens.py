"""Device tokens: a signed challenge buys a short-lived bearer token for pulls and receipts.

Challenges and tokens are stateless (HMAC with a key derived from the server's signing key),
so every worker accepts what another issued; the device row is read on every use, so a
revocation applies at once.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import uuid

from campsync_sync import (
    BadSignature,
    ChallengeResponse,
    DeviceToken,
    TokenRequest,
    load_signing_public,
    verify_statement,
)
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from api.config import Settings
from api.devices.models import Device
from api.devices.service import DeviceUnknown, revoked_error
from api.errors import Unauthenticated
from api.ratelimit import Backoff, Blocked, too_many
from api.sync.keys import KeySet
from api.types import utcnow

CHALLENGE_TTL = dt.timedelta(minutes=2)
_TOKEN_PREFIX = "cdt1"  # noqa: S105 - a format marker, not a secret


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


def _challenge_signed(keys: KeySet, device: Device, request: TokenRequest) -> bool:
    """Whether the challenge is fresh and ours, and the device's key signed it."""
    parts = request.challenge.split(".")
    if len(parts) != 3 or not _fresh(parts[0]):
        return False
    stamp, nonce, mac = parts
    if not hmac.compare_digest(mac, keys.mac("challenge", str(device.id), stamp, nonce)):
        return False
    statement = f"{keys.deployment_id}\0{device.id}\0{request.challenge}".encode()
    try:
        verify_statement(
            load_signing_public(device.signing_key), "device-token", statement, request.signature
        )
    except BadSignature:
        return False
    return True


def issue_token(
    *,
    session: Session,
    keys: KeySet,
    settings: Settings,
    request: TokenRequest,
    backoff: Backoff,
    address: str,
) -> DeviceToken:
    """Exchange a signed challenge for a short-lived device token.

    A right signature always gets its token: nobody can guess one, so failures from
    whoever names this device's id (it is no secret) must not lock the tablet out. Failures
    back off per device and per address, and a key that must wait is answered 429.
    """
    device = active_device(session, keys, request.device_id)
    if not _challenge_signed(keys, device, request):
        try:
            backoff.begin(f"device:{device.id}", f"address:{address}")
        except Blocked as blocked:
            raise too_many(blocked, "too many failed attempts: wait before trying again") from None
        raise Unauthenticated("the challenge or its signature is invalid")
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
