"""Who the tablet is, which server it trusts, and how it opens what that server sends.

The server's Ed25519 signing key is pinned at enrolment (against the fingerprint of the
enrolment QR code when there is one, on first use otherwise). Every manifest of transport keys,
every receipt, every pull page and every wipe order must verify with that pinned key.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from campsync_sync import (
    DEFAULT_SUITE,
    BadSignature,
    EnvelopeHeader,
    KeyInfo,
    KeyKind,
    KeyManifest,
    SignedManifest,
    Suite,
    UnknownKey,
    b64decode,
    b64encode,
    fingerprint,
    key_id,
    load_signing_public,
    load_transport_public,
    node_id_for,
    signing_public_bytes,
    verify_statement,
    wipe_statement,
)
from campsync_sync.keys import RecipientPrivate, RecipientPublic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError as PydanticError

from campsync_client._errors import UntrustedServer

__all__ = [
    "Identity",
    "ServerKeys",
    "TransportKey",
    "normalize_fingerprint",
    "pick_transport_key",
    "verify_manifest",
    "verify_wipe_order",
]


def normalize_fingerprint(text: str) -> str:
    """Compare fingerprints whatever their grouping or case."""
    return "".join(ch for ch in text.lower() if ch in "0123456789abcdef")


def verify_manifest(
    signed: SignedManifest, *, pinned: bytes | None = None, expected_fingerprint: str | None = None
) -> tuple[KeyManifest, bytes]:
    """Check a signed manifest: returns the manifest and the server signing key's bytes.

    With ``pinned``, the manifest's signing key must be that key. With a fingerprint, it must
    match. With neither (first use), the key is whatever signed the manifest consistently.

    Raises:
        UntrustedServer: when the signature, the pinned key or the fingerprint do not match.
    """
    try:
        manifest = KeyManifest.model_validate_json(signed.payload)
        key_bytes = b64decode(manifest.signing_key.public_key)
        key = load_signing_public(key_bytes)
        verify_statement(key, "manifest", signed.payload.encode(), signed.signature)
    except (PydanticError, ValueError, UnknownKey, BadSignature):
        raise UntrustedServer("the server's key manifest does not verify") from None
    if pinned is not None and key_bytes != pinned:
        raise UntrustedServer("the server's signing key is not the one pinned at enrolment")
    if expected_fingerprint is not None and normalize_fingerprint(
        fingerprint(key_bytes)
    ) != normalize_fingerprint(expected_fingerprint):
        raise UntrustedServer("the server's signing key does not match the expected fingerprint")
    return manifest, key_bytes


@dataclass(frozen=True, slots=True)
class TransportKey:
    """A server transport key batches are sealed to."""

    kid: str
    suite: Suite
    public: RecipientPublic


_SUITE_BY_NAME = {
    KeyKind.X25519.value: DEFAULT_SUITE,
    KeyKind.MLKEM768_X25519.value: Suite.MLKEM768X25519_CHACHA20POLY1305,
    **{suite.name.lower(): suite for suite in Suite},
    **{str(int(suite)): suite for suite in Suite},
}


def _suite_of(info: KeyInfo) -> Suite | None:
    return _SUITE_BY_NAME.get(info.suite.lower())


def pick_transport_key(manifest: KeyManifest) -> TransportKey:
    """The newest active transport key of a suite this client speaks.

    Validity dates are not compared with the tablet's clock, which may be years off; the
    server answers ``key_destroyed`` when a key is no longer usable and the client re-seals.

    Raises:
        UntrustedServer: when the manifest offers no usable key.
    """

    def rank(info: KeyInfo) -> tuple[bool, dt.datetime]:
        return info.status == "active", info.not_before

    for info in sorted(manifest.transport_keys, key=rank, reverse=True):
        suite = _suite_of(info)
        if suite is None:
            continue
        try:
            public = load_transport_public(suite.key_kind, b64decode(info.public_key))
        except (UnknownKey, ValueError):
            continue
        if key_id(b64decode(info.public_key)) != info.kid:
            continue
        return TransportKey(info.kid, suite, public)
    raise UntrustedServer("the server's manifest offers no transport key this client can use")


@dataclass(frozen=True, slots=True)
class Identity:
    """The device's keys and enrolment, sealed in the store."""

    device_id: uuid.UUID
    camp_id: str
    deployment_id: str
    server_url: str
    device_name: str | None
    signing_key: Ed25519PrivateKey
    exchange_key: X25519PrivateKey
    server_key: bytes

    @property
    def node(self) -> int:
        """The HLC node id of this device."""
        return node_id_for(self.device_id)

    @property
    def signing_kid(self) -> str:
        """The id of the device's signing key."""
        return key_id(signing_public_bytes(self.signing_key))

    @property
    def exchange_kid(self) -> str:
        """The id of the device's exchange key."""
        return key_id(self.exchange_key.public_key().public_bytes_raw())

    @property
    def server_kid(self) -> str:
        """The id of the pinned server signing key."""
        return key_id(self.server_key)

    @property
    def server_public(self) -> Ed25519PublicKey:
        """The pinned server signing key."""
        return load_signing_public(self.server_key)

    def to_json(self) -> dict[str, Any]:
        """The sealed form."""
        return {
            "device_id": str(self.device_id),
            "camp_id": self.camp_id,
            "deployment_id": self.deployment_id,
            "server_url": self.server_url,
            "device_name": self.device_name,
            "signing_key": b64encode(self.signing_key.private_bytes_raw()),
            "exchange_key": b64encode(self.exchange_key.private_bytes_raw()),
            "server_key": b64encode(self.server_key),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Identity:
        """Inverse of :meth:`to_json`."""
        return cls(
            device_id=uuid.UUID(data["device_id"]),
            camp_id=data["camp_id"],
            deployment_id=data["deployment_id"],
            server_url=data["server_url"],
            device_name=data.get("device_name"),
            signing_key=Ed25519PrivateKey.from_private_bytes(b64decode(data["signing_key"])),
            exchange_key=X25519PrivateKey.from_private_bytes(b64decode(data["exchange_key"])),
            server_key=b64decode(data["server_key"]),
        )


class ServerKeys:
    """Resolves the keys of envelopes the server sends this device (receipts, pull pages)."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    def sender_key(self, header: EnvelopeHeader) -> Ed25519PublicKey:
        """The pinned server key; nothing else may sign what the tablet accepts."""
        if header.snd != "server" or header.skid != self._identity.server_kid:
            raise UnknownKey("envelope not signed by the pinned server key")
        return self._identity.server_public

    def recipient_key(self, header: EnvelopeHeader, suite: Suite) -> RecipientPrivate:
        """The device's exchange key."""
        if header.rkid != self._identity.exchange_kid or suite.key_kind is not KeyKind.X25519:
            raise UnknownKey("envelope not sealed to this device's exchange key")
        return self._identity.exchange_key


def verify_wipe_order(identity: Identity, details: Any) -> bool:
    """Whether ``details`` of a ``device_revoked`` answer hold a genuine wipe order for us."""
    try:
        order = details["wipe"]
        deployment_id, device_id = order["deployment_id"], uuid.UUID(order["device_id"])
        signature = order["signature"]
        if deployment_id != identity.deployment_id or device_id != identity.device_id:
            return False
        statement = wipe_statement(deployment_id, device_id)
        verify_statement(identity.server_public, "wipe", statement, signature)
    except (KeyError, TypeError, ValueError, AttributeError, BadSignature, UnknownKey):
        return False
    return True
