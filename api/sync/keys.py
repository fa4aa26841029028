"""The server's keys: the deployment id, the signing key tablets pin, rotating transport keys.

Public halves and lifecycle (active → retired → destroyed) live in the ``server_key`` table, so
every worker process and the CLI agree on them. Private halves live in ``data_dir/keys`` (files
readable by the owner only) or in the table itself (``settings.key_store = "database"``). Keys
and the deployment id are created on first use, under a lock, so concurrent workers create one
set. Destroying a key deletes its private half: envelopes sealed to it can no longer be opened.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from campsync_sync import (
    KeyDestroyed,
    KeyInfo,
    KeyKind,
    KeyManifest,
    SignedManifest,
    TransportKeyPair,
    UnknownKey,
    b64encode,
    fingerprint,
    key_id,
    sign_statement,
    signing_public_bytes,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, select, text, update
from sqlmodel import Session, col

from api.audit import service as audit
from api.config import Settings
from api.db import write_session
from api.sync.models import ServerKey, ServerMeta
from api.types import utcnow

log = logging.getLogger("campsync.keys")
SIGNING = "signing"
TRANSPORT = "transport"
ED25519 = "ed25519"
DEPLOYMENT_ID = "deployment_id"
_TRANSPORT_KINDS: Final = (KeyKind.X25519, KeyKind.MLKEM768_X25519)
_LOCK_KEY: Final = 0x63616D706B657973  # "campkeys": serialises key creation on PostgreSQL
_REFRESH_SECONDS: Final = 2.0


@dataclass(frozen=True, slots=True)
class TransportKey:
    kid: str
    kind: KeyKind
    status: str
    created_at: dt.datetime
    destroy_after: dt.datetime | None
    public_bytes: bytes
    pair: TransportKeyPair | None
    """``None`` once destroyed."""


@dataclass(frozen=True, slots=True)
class KeySet:
    """A snapshot of the server's keys, as loaded from storage."""

    deployment_id: str
    signing_kid: str
    signing_key: Ed25519PrivateKey
    signing_created_at: dt.datetime
    transport: dict[str, TransportKey]
    token_secret: bytes
    """MAC key of device challenges and tokens, derived from the signing key, so every worker
    and every restart agrees on it without storing another secret."""

    @property
    def fingerprint(self) -> str:
        return fingerprint(signing_public_bytes(self.signing_key))

    def recipient(self, kid: str) -> TransportKey:
        """The transport key ``kid``, able to decrypt.

        Raises:
            UnknownKey: when no such key exists.
            KeyDestroyed: when it existed and was destroyed.
        """
        key = self.transport.get(kid)
        if key is None:
            raise UnknownKey("the envelope is sealed to a key this server does not know")
        if key.pair is None:
            raise KeyDestroyed("the envelope is sealed to a destroyed key: re-seal it")
        return key

    def manifest(self) -> SignedManifest:
        """The signed list of public keys: the signing key and live transport keys."""
        signing = KeyInfo(
            kid=self.signing_kid,
            suite=ED25519,
            public_key=b64encode(signing_public_bytes(self.signing_key)),
            not_before=self.signing_created_at,
        )
        transport = [
            KeyInfo(
                kid=k.kid,
                suite=k.kind.value,
                public_key=b64encode(k.public_bytes),
                not_before=k.created_at,
                not_after=k.destroy_after,
                status="active" if k.status == "active" else "retired",
            )
            for k in sorted(self.transport.values(), key=lambda k: (k.created_at, k.kid))
            if k.pair is not None
        ]
        payload = KeyManifest(
            deployment_id=self.deployment_id,
            issued_at=utcnow(),
            signing_key=signing,
            transport_keys=transport,
        ).model_dump_json()
        return SignedManifest(
            payload=payload,
            signature=sign_statement(self.signing_key, "manifest", payload.encode()),
        )

    def mac(self, *parts: str) -> str:
        message = "\x00".join(parts).encode()
        return b64encode(hmac.digest(self.token_secret, message, hashlib.sha256)[:16])


class Keyring:
    """Loads the key set lazily and refreshes it every few seconds (other workers rotate too)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._loaded_at = 0.0

    def current(self) -> KeySet:
        with self._lock:
            if self._keys is None or time.monotonic() - self._loaded_at > _REFRESH_SECONDS:
                self._keys = self._load()
                self._loaded_at = time.monotonic()
            return self._keys

    def refresh(self) -> KeySet:
        with self._lock:
            self._keys = None
        return self.current()

    def _load(self) -> KeySet:
        with Session(self.engine) as session:
            loaded = _read(session, self.settings, previous=self._keys)
        if loaded is not None:
            return loaded
        ensure_keys(self.engine, self.settings)
        with Session(self.engine) as session:
            loaded = _read(session, self.settings, previous=None)
        if loaded is None:  # pragma: no cover - ensure_keys just created them
            raise RuntimeError("server keys are missing")
        return loaded


def _key_dir(settings: Settings) -> Path:
    return settings.data_dir / "keys"


def _write_private(settings: Settings, kid: str, data: bytes) -> None:
    directory = _key_dir(settings)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{kid}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_private(settings: Settings, row: ServerKey) -> bytes | None:
    if row.status == "destroyed":
        return None
    if row.private_key is not None:
        return row.private_key
    path = _key_dir(settings) / f"{row.kid}.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _destroy_private(settings: Settings, kid: str) -> None:
    path = _key_dir(settings) / f"{kid}.key"
    if path.exists():
        # Overwrite first: unlinking alone leaves the bytes on disk.
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.write(secrets.token_bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
        path.unlink()


def _token_secret(signing: Ed25519PrivateKey) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"campsync device tokens v1").derive(
        signing.private_bytes_raw()
    )


def _read(session: Session, settings: Settings, previous: KeySet | None) -> KeySet | None:
    deployment = session.get(ServerMeta, DEPLOYMENT_ID)
    rows = list(session.execute(select(ServerKey)).scalars())
    signing_rows = [r for r in rows if r.purpose == SIGNING and r.status == "active"]
    if deployment is None or not signing_rows:
        return None
    if not any(r.purpose == TRANSPORT and r.status == "active" for r in rows):
        return None
    signing_row = signing_rows[0]
    if previous is not None and previous.signing_kid == signing_row.kid:
        signing = previous.signing_key
    else:
        raw = _read_private(settings, signing_row)
        if raw is None:
            # Key ids and paths are not personal data; say exactly what is wrong.
            where = "the database" if settings.key_store == "database" else _key_dir(settings)
            log.error(f"server signing key {signing_row.kid} has no private half in {where}")
            raise RuntimeError("the server signing key's private half is missing")
        signing = Ed25519PrivateKey.from_private_bytes(raw)
    transport: dict[str, TransportKey] = {}
    for row in rows:
        if row.purpose != TRANSPORT:
            continue
        kind = KeyKind(row.kind)
        known = previous.transport.get(row.kid) if previous is not None else None
        pair: TransportKeyPair | None
        if row.status == "destroyed":
            pair = None
        elif known is not None and known.pair is not None:
            pair = known.pair
        else:
            raw = _read_private(settings, row)
            pair = TransportKeyPair.from_private_bytes(kind, raw) if raw is not None else None
        transport[row.kid] = TransportKey(
            row.kid, kind, row.status, row.created_at, row.destroy_after, row.public_key, pair
        )
    return KeySet(
        deployment_id=deployment.value,
        signing_kid=signing_row.kid,
        signing_key=signing,
        signing_created_at=signing_row.created_at,
        transport=transport,
        token_secret=_token_secret(signing),
    )


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def _store(session: Session, settings: Settings, row: ServerKey, private: bytes) -> None:
    if settings.key_store == "database":
        row.private_key = private
    else:
        _write_private(settings, row.kid, private)
    session.add(row)


def _new_transport_keys(session: Session, settings: Settings) -> list[str]:
    kids = []
    for kind in _TRANSPORT_KINDS:
        pair = TransportKeyPair.generate(kind)
        row = ServerKey(
            kid=pair.kid, purpose=TRANSPORT, kind=kind.value, public_key=pair.public_bytes
        )
        _store(session, settings, row, pair.private_bytes)
        kids.append(pair.kid)
    return kids


def ensure_keys(engine: Engine, settings: Settings) -> None:
    """Create the deployment id and the first keys unless they exist (idempotent, race-safe)."""
    with write_session(engine) as session:
        _lock(session)
        created = []
        if session.get(ServerMeta, DEPLOYMENT_ID) is None:
            session.add(ServerMeta(name=DEPLOYMENT_ID, value=f"dep-{secrets.token_hex(8)}"))
            created.append(DEPLOYMENT_ID)
        active = list(
            session.execute(select(ServerKey).where(col(ServerKey.status) == "active")).scalars()
        )
        if not any(r.purpose == SIGNING for r in active):
            signing = Ed25519PrivateKey.generate()
            public = signing_public_bytes(signing)
            row = ServerKey(kid=key_id(public), purpose=SIGNING, kind=ED25519, public_key=public)
            _store(session, settings, row, signing.private_bytes_raw())
            created.append(row.kid)
        if not any(r.purpose == TRANSPORT for r in active):
            created += _new_transport_keys(session, settings)
        if created:
            session.flush()
            audit.append(
                session,
                actor_type="system",
                actor_id="server",
                action="keys.create",
                details={"created": created},
            )


@dataclass(frozen=True)
class Rotation:
    created: list[str]
    retired: list[str]
    destroyed: list[str]


def rotate_keys(*, engine: Engine, settings: Settings, actor: str) -> Rotation:
    """Make new transport keys active, retire the old ones, destroy those past their grace."""
    ensure_keys(engine, settings)
    now = utcnow()
    grace = dt.timedelta(days=settings.key_rotation_grace_days)
    with write_session(engine) as session:
        _lock(session)
        rows = list(
            session.execute(select(ServerKey).where(col(ServerKey.purpose) == TRANSPORT)).scalars()
        )
        retired = [r.kid for r in rows if r.status == "active"]
        session.execute(
            update(ServerKey)
            .where(col(ServerKey.kid).in_(retired))
            .values(status="retired", retired_at=now, destroy_after=now + grace)
        )
        created = _new_transport_keys(session, settings)
        destroyed = [
            r.kid
            for r in rows
            if r.status == "retired" and r.destroy_after is not None and r.destroy_after <= now
        ]
        session.execute(
            update(ServerKey)
            .where(col(ServerKey.kid).in_(destroyed))
            .values(status="destroyed", destroyed_at=now, private_key=None)
        )
        audit.append(
            session,
            actor_type="user" if actor.startswith("user:") else "system",
            actor_id=actor,
            action="keys.rotate",
            details={"created": created, "retired": retired, "destroyed": destroyed},
        )
    for kid in destroyed:
        _destroy_private(settings, kid)
    return Rotation(created, retired, destroyed)
