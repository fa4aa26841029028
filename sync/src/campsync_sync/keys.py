"""Keys: generation, serialisation, ids and fingerprints, and signed server statements.

Devices hold an Ed25519 signing key and an X25519 exchange key. The server holds an Ed25519
signing key (long-lived, pinned by tablets at enrolment) and rotating transport keys, either
X25519 or the ML-KEM-768 + X25519 hybrid. Key ids are the first 16 hex digits of the SHA-256
of the public key, so anyone holding a public key can compute its id.

Every signature outside an envelope is a *statement*: Ed25519 over
``"campsync-statement-v1" 0x00 label 0x00 payload``, so that a signature made for one purpose
(``manifest``, ``wipe``, ``device-token``, ``enroll``) never verifies for another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import MLKEM768X25519PrivateKey, MLKEM768X25519PublicKey
from pydantic import ValidationError

from campsync_sync.errors import BadSignature, UnknownKey, WrongDeployment
from campsync_sync.wire import KeyManifest, SignedManifest

__all__ = [
    "KeyKind",
    "RecipientPrivate",
    "RecipientPublic",
    "TransportKeyPair",
    "b64decode",
    "b64encode",
    "enrollment_proof_message",
    "fingerprint",
    "key_id",
    "load_signing_public",
    "load_transport_public",
    "sign_manifest",
    "sign_statement",
    "signing_public_bytes",
    "token_message",
    "verify_manifest",
    "verify_statement",
    "wipe_statement",
]

_MLKEM_PUBLIC: Final = 1184
_MLKEM_SEED: Final = 64
_XWING_SEED: Final = 32
_X25519: Final = 32
_ED25519: Final = 32
_B64 = re.compile(r"\A[A-Za-z0-9_-]*={0,2}\Z")


class KeyKind(StrEnum):
    """Kinds of transport (HPKE recipient) keys."""

    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768x25519"


RecipientPublic = X25519PublicKey | MLKEM768X25519PublicKey
RecipientPrivate = X25519PrivateKey | MLKEM768X25519PrivateKey


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding, the form every key and signature takes on the wire."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Inverse of :func:`b64encode`; accepts padded input too, nothing else.

    Characters outside the URL-safe alphabet and non-zero trailing bits are refused, so each
    byte string has exactly one unpadded text form.

    Raises:
        ValueError: when ``text`` is not canonical URL-safe base64.
    """
    if not isinstance(text, str) or _B64.match(text) is None:
        raise ValueError("not valid base64")
    unpadded = text.rstrip("=")
    try:
        data = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error as exc:
        raise ValueError("not valid base64") from exc
    if b64encode(data) != unpadded:
        raise ValueError("not canonical base64")
    return data


def key_id(public_bytes: bytes) -> str:
    """The id of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_bytes).hexdigest()[:16]


def fingerprint(public_bytes: bytes) -> str:
    """A fingerprint to pin or compare by eye: 64 hex digits in groups of four."""
    digest = hashlib.sha256(public_bytes).hexdigest()
    return "-".join(digest[i : i + 4] for i in range(0, 64, 4))


def signing_public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Raw 32-byte Ed25519 public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()


def load_signing_public(data: bytes) -> Ed25519PublicKey:
    """Load a raw Ed25519 public key.

    Raises:
        UnknownKey: when ``data`` is not a valid Ed25519 public key.
    """
    try:
        return Ed25519PublicKey.from_public_bytes(data)
    except ValueError:
        raise UnknownKey("not an Ed25519 public key") from None


def load_transport_public(kind: KeyKind | str, data: bytes) -> RecipientPublic:
    """Load a raw transport public key of the given kind.

    The hybrid key is the ML-KEM-768 encapsulation key (1184 bytes) followed by the X25519 key.

    Raises:
        UnknownKey: when ``kind`` is unknown or ``data`` is not a valid key of that kind.
    """
    if kind not in KeyKind._value2member_map_:
        raise UnknownKey("unknown transport key kind")
    kind = KeyKind(kind)
    invalid = UnknownKey(f"not a valid {kind} public key")
    if kind is KeyKind.MLKEM768_X25519 and len(data) != _MLKEM_PUBLIC + _X25519:
        raise invalid
    try:
        if kind is KeyKind.X25519:
            return X25519PublicKey.from_public_bytes(data)
        return MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(data[:_MLKEM_PUBLIC]),
            X25519PublicKey.from_public_bytes(data[_MLKEM_PUBLIC:]),
        )
    except ValueError:
        raise invalid from None


def _hybrid_parts(data: bytes) -> tuple[mlkem.MLKEM768PrivateKey, X25519PrivateKey]:
    """The components of an X-Wing private key, from its 32-byte seed (or 96 expanded bytes)."""
    if len(data) == _XWING_SEED:
        # draft-connolly-cfrg-xwing-kem: SHAKE256(seed, 96) = ML-KEM-768 seed (d || z) || X25519.
        data = hashlib.shake_256(data).digest(_MLKEM_SEED + _X25519)
    if len(data) != _MLKEM_SEED + _X25519:
        raise ValueError("a hybrid private key is a 32-byte X-Wing seed")
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(data[:_MLKEM_SEED]),
        X25519PrivateKey.from_private_bytes(data[_MLKEM_SEED:]),
    )


@dataclass(frozen=True, slots=True)
class TransportKeyPair:
    """A transport key pair, able to round-trip through bytes for storage.

    ``private_bytes`` is the raw X25519 key (32 bytes), or for the hybrid the 32-byte X-Wing
    seed that standard MLKEM768-X25519 implementations load (96 bytes, the expanded ML-KEM
    seed and X25519 key, are accepted too). It is kept out of ``repr`` so that it never
    reaches a log.
    """

    kind: KeyKind
    private_bytes: bytes = field(repr=False)
    public_bytes: bytes

    def __post_init__(self) -> None:
        # Callers load kinds from storage as plain strings; normalise, or refuse early.
        object.__setattr__(self, "kind", KeyKind(self.kind))

    @classmethod
    def generate(cls, kind: KeyKind | str = KeyKind.X25519) -> TransportKeyPair:
        """Generate a fresh key pair of the given kind."""
        if KeyKind(kind) is KeyKind.X25519:
            return cls.from_private_bytes(kind, X25519PrivateKey.generate().private_bytes_raw())
        return cls.from_private_bytes(kind, os.urandom(_XWING_SEED))

    @classmethod
    def from_private_bytes(cls, kind: KeyKind | str, data: bytes) -> TransportKeyPair:
        """Rebuild a pair from stored private bytes.

        Raises:
            ValueError: when ``kind`` is unknown or ``data`` is not a private key of that kind.
        """
        kind = KeyKind(kind)
        if kind is KeyKind.X25519:
            public = X25519PrivateKey.from_private_bytes(data).public_key().public_bytes_raw()
            return cls(kind, data, public)
        m, x = _hybrid_parts(data)
        public = m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
        return cls(kind, data, public)

    @property
    def kid(self) -> str:
        """The key id."""
        return key_id(self.public_bytes)

    def private_key(self) -> RecipientPrivate:
        """The key object HPKE decrypts with."""
        if self.kind is KeyKind.X25519:
            return X25519PrivateKey.from_private_bytes(self.private_bytes)
        return MLKEM768X25519PrivateKey(*_hybrid_parts(self.private_bytes))

    def public_key(self) -> RecipientPublic:
        """The key object HPKE encrypts to."""
        return load_transport_public(self.kind, self.public_bytes)


# ---------------------------------------------------------------------- signed statements

_STATEMENT: Final = b"campsync-statement-v1\x00"
_ENROLL: Final = b"campsync-enroll-v1\x00"
_WIPE: Final = b"campsync-wipe-v1\x00"


def _statement(label: str, payload: bytes) -> bytes:
    if not label or "\x00" in label:
        raise ValueError("a statement label is a non-empty string without NUL")
    return _STATEMENT + label.encode() + b"\x00" + payload


def sign_statement(key: Ed25519PrivateKey, label: str, payload: bytes) -> str:
    """Sign ``payload`` for the purpose ``label``; returns the base64 signature."""
    return b64encode(key.sign(_statement(label, payload)))


def verify_statement(key: Ed25519PublicKey, label: str, payload: bytes, signature: str) -> None:
    """Verify a signature made by :func:`sign_statement`.

    Raises:
        BadSignature: when the signature is malformed or does not verify.
    """
    message = _statement(label, payload)
    try:
        key.verify(b64decode(signature), message)
    except (InvalidSignature, ValueError):
        raise BadSignature(f"{label} signature does not verify") from None


def _nul_free(**parts: str) -> None:
    for name, value in parts.items():
        if "\x00" in value:
            raise ValueError(f"{name} must not contain NUL")


def enrollment_proof_message(
    code: str, deployment_id: str, signing_key: bytes, exchange_key: bytes
) -> bytes:
    """The bytes a tablet signs (plain Ed25519, not a statement) to prove it holds its key.

    ``enroll-label || deployment_id 0x00 code 0x00 signing_key(32) exchange_key(32)``.

    Raises:
        ValueError: when a key is not 32 bytes or a text part contains NUL.
    """
    if len(signing_key) != _ED25519 or len(exchange_key) != _X25519:
        raise ValueError("enrolment keys are a 32-byte Ed25519 and a 32-byte X25519 key")
    _nul_free(code=code, deployment_id=deployment_id)
    return (
        _ENROLL
        + deployment_id.encode()
        + b"\x00"
        + code.encode()
        + b"\x00"
        + signing_key
        + exchange_key
    )


def wipe_statement(deployment_id: str, device_id: uuid.UUID) -> bytes:
    """The payload the server signs (label ``wipe``) to order one device to wipe itself."""
    _nul_free(deployment_id=deployment_id)
    return _WIPE + deployment_id.encode() + b"\x00" + device_id.bytes


def token_message(deployment_id: str, device_id: uuid.UUID, challenge: str) -> bytes:
    """The payload a device signs (label ``device-token``) to exchange a challenge for a token."""
    _nul_free(deployment_id=deployment_id, challenge=challenge)
    return f"{deployment_id}\x00{device_id}\x00{challenge}".encode()


def sign_manifest(key: Ed25519PrivateKey, manifest: KeyManifest) -> SignedManifest:
    """Serialise and sign the server's key manifest (label ``manifest``)."""
    payload = manifest.model_dump_json()
    return SignedManifest(
        payload=payload, signature=sign_statement(key, "manifest", payload.encode())
    )


def verify_manifest(
    signed: SignedManifest, *, pinned_fingerprint: str, deployment_id: str
) -> KeyManifest:
    """Check a signed manifest against the server key a tablet pinned at enrolment.

    The manifest names its own signing key; that key must have the pinned fingerprint, the
    signature must verify with it, and the manifest must belong to the expected deployment.

    Raises:
        BadSignature: when the payload is malformed or the signature does not verify.
        UnknownKey: when the manifest's signing key is not the pinned key.
        WrongDeployment: when the manifest is another deployment's.
    """
    try:
        manifest = KeyManifest.model_validate_json(signed.payload)
        public = b64decode(manifest.signing_key.public_key)
    except (ValidationError, ValueError):
        raise BadSignature("manifest is malformed") from None
    if fingerprint(public) != pinned_fingerprint:
        raise UnknownKey("manifest is signed by a key that is not the pinned server key")
    verify_statement(
        load_signing_public(public), "manifest", signed.payload.encode(), signed.signature
    )
    if manifest.deployment_id != deployment_id:
        raise WrongDeployment("manifest belongs to another deployment")
    return manifest
