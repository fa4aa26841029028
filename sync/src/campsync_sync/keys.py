"""Keys: generation, serialisation, ids and fingerprints, and signed server statements.

Devices hold an Ed25519 signing key and an X25519 exchange key. The server holds an Ed25519
signing key (long-lived, pinned by tablets at enrolment) and rotating transport keys, either
X25519 or the ML-KEM-768 + X25519 hybrid. Key ids are the first 16 hex digits of the SHA-256
of the public key, so anyone holding a public key can compute its id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import MLKEM768X25519PrivateKey, MLKEM768X25519PublicKey

from campsync_sync.errors import BadSignature, UnknownKey

__all__ = [
    "KeyKind",
    "TransportKeyPair",
    "b64decode",
    "b64encode",
    "enrollment_proof_message",
    "fingerprint",
    "key_id",
    "load_signing_public",
    "load_transport_public",
    "sign_statement",
    "signing_public_bytes",
    "verify_statement",
    "wipe_statement",
]

_MLKEM_PUBLIC = 1184
_MLKEM_SEED = 64
_X25519 = 32


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
    """Inverse of :func:`b64encode`; accepts padded input too.

    Raises:
        ValueError: when ``text`` is not base64.
    """
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc


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


def load_transport_public(kind: KeyKind, data: bytes) -> RecipientPublic:
    """Load a raw transport public key of the given kind.

    The hybrid key is the ML-KEM-768 encapsulation key (1184 bytes) followed by the X25519 key.

    Raises:
        UnknownKey: when ``data`` is not a valid key of that kind.
    """
    try:
        if kind is KeyKind.X25519:
            return X25519PublicKey.from_public_bytes(data)
        if len(data) != _MLKEM_PUBLIC + _X25519:
            raise UnknownKey(f"not a valid {kind} public key")
        return MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(data[:_MLKEM_PUBLIC]),
            X25519PublicKey.from_public_bytes(data[_MLKEM_PUBLIC:]),
        )
    except ValueError:
        raise UnknownKey(f"not a valid {kind} public key") from None


@dataclass(frozen=True, slots=True)
class TransportKeyPair:
    """A transport key pair, able to round-trip through bytes for storage."""

    kind: KeyKind
    private_bytes: bytes
    public_bytes: bytes

    @classmethod
    def generate(cls, kind: KeyKind = KeyKind.X25519) -> TransportKeyPair:
        """Generate a fresh key pair of the given kind."""
        x = X25519PrivateKey.generate()
        x_pub = x.public_key().public_bytes_raw()
        if kind is KeyKind.X25519:
            return cls(kind, x.private_bytes_raw(), x_pub)
        m = mlkem.MLKEM768PrivateKey.generate()
        return cls(
            kind,
            m.private_bytes_raw() + x.private_bytes_raw(),
            m.public_key().public_bytes_raw() + x_pub,
        )

    @classmethod
    def from_private_bytes(cls, kind: KeyKind, data: bytes) -> TransportKeyPair:
        """Rebuild a pair from stored private bytes."""
        if kind is KeyKind.X25519:
            x = X25519PrivateKey.from_private_bytes(data)
            return cls(kind, data, x.public_key().public_bytes_raw())
        m = mlkem.MLKEM768PrivateKey.from_seed_bytes(data[:_MLKEM_SEED])
        x = X25519PrivateKey.from_private_bytes(data[_MLKEM_SEED:])
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
        return MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(self.private_bytes[:_MLKEM_SEED]),
            X25519PrivateKey.from_private_bytes(self.private_bytes[_MLKEM_SEED:]),
        )

    def public_key(self) -> RecipientPublic:
        """The key object HPKE encrypts to."""
        return load_transport_public(self.kind, self.public_bytes)


# Domain-separation labels: a signature made for one purpose never verifies for another.
_STATEMENT: Final = b"campsync-statement-v1\x00"
_ENROLL: Final = b"campsync-enroll-v1\x00"
_WIPE: Final = b"campsync-wipe-v1\x00"


def sign_statement(key: Ed25519PrivateKey, label: str, payload: bytes) -> str:
    """Sign ``payload`` for the purpose ``label``; returns the base64 signature."""
    return b64encode(key.sign(_STATEMENT + label.encode() + b"\x00" + payload))


def verify_statement(key: Ed25519PublicKey, label: str, payload: bytes, signature: str) -> None:
    """Verify a signature made by :func:`sign_statement`.

    Raises:
        BadSignature: when the signature is malformed or does not verify.
    """
    try:
        key.verify(b64decode(signature), _STATEMENT + label.encode() + b"\x00" + payload)
    except (InvalidSignature, ValueError):
        raise BadSignature(f"{label} signature does not verify") from None


def enrollment_proof_message(
    code: str, deployment_id: str, signing_key: bytes, exchange_key: bytes
) -> bytes:
    """The bytes a tablet signs at enrolment to prove it holds its signing key."""
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
    """The bytes the server signs to order one device to wipe itself."""
    return _WIPE + deployment_id.encode() + b"\x00" + device_id.bytes
