"""Test helpers for envelopes: a key ring (a KeyResolver), batches, and a raw framer.

``frame`` builds an envelope byte by byte from docs/protocol.md, independently of
``campsync_sync.seal``, so that tests can forge what ``seal`` refuses to make (bombs, lies about
lengths, other versions) and so that the layout itself is checked against the spec.
"""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from dataclasses import dataclass, field

from campsync_sync import (
    HLC,
    Batch,
    EnvelopeHeader,
    FieldWrite,
    KeyDestroyed,
    PatchOp,
    Suite,
    TransportKeyPair,
    UnknownKey,
    key_id,
    signing_public_bytes,
)
from campsync_sync.keys import RecipientPrivate
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DEPLOYMENT = "torkham-test"
INFO_LABEL = b"campsync-envelope-v1/info\x00"
SIG_LABEL = b"campsync-envelope-v1/sig\x00"


def seeded(label: str) -> bytes:
    """32 bytes derived from a label: keys are fixed, so runs (and their failures) repeat."""
    return hashlib.sha256(b"campsync-tests/" + label.encode()).digest()


def transport_key(kind: str, label: str) -> TransportKeyPair:
    return TransportKeyPair.from_private_bytes(kind, seeded(label))


@dataclass
class Device:
    id: uuid.UUID
    key: Ed25519PrivateKey = field(init=False)
    seed_label: str = ""

    def __post_init__(self) -> None:
        self.key = Ed25519PrivateKey.from_private_bytes(
            seeded(f"device/{self.id}/{self.seed_label}")
        )

    @property
    def kid(self) -> str:
        return key_id(signing_public_bytes(self.key))


@dataclass
class KeyRing:
    """What a receiver knows: sender signing keys, its transport keys, destroyed key ids."""

    senders: dict[tuple[str, str], Ed25519PublicKey] = field(default_factory=dict)
    recipients: dict[str, TransportKeyPair] = field(default_factory=dict)
    destroyed: set[str] = field(default_factory=set)

    def add_device(self, device: Device) -> None:
        self.senders[str(device.id), device.kid] = device.key.public_key()

    def add_transport(self, pair: TransportKeyPair) -> None:
        self.recipients[pair.kid] = pair

    def sender_key(self, header: EnvelopeHeader) -> Ed25519PublicKey:
        try:
            return self.senders[header.snd, header.skid]
        except KeyError:
            raise UnknownKey("unknown sender key") from None

    def recipient_key(self, header: EnvelopeHeader, suite: Suite) -> RecipientPrivate:
        if header.rkid in self.destroyed:
            raise KeyDestroyed("transport key destroyed")
        try:
            return self.recipients[header.rkid].private_key()
        except KeyError:
            raise UnknownKey("unknown transport key") from None


def batch_for(
    device: Device, seq: int = 1, n_ops: int = 2, batch_id: uuid.UUID | None = None
) -> Batch:
    node = int.from_bytes(device.id.bytes[8:], "big")
    stamp = str(HLC(1_790_000_000_000, 0, node))
    ops = [
        PatchOp(
            op_id=uuid.UUID(int=i + 1),
            entity="person",
            id=uuid.UUID(int=1000 + i),
            fields={"given_name": FieldWrite(value=f"Zahra {i}", hlc=stamp)},
        )
        for i in range(n_ops)
    ]
    return Batch.of(
        batch_id=batch_id or uuid.UUID(int=(seq << 64) | device.id.int >> 64),
        device_id=device.id,
        seq=seq,
        hlc=stamp,
        ops=ops,
    )


def push_header(device: Device, batch: Batch, rkid: str, /, **overrides) -> EnvelopeHeader:
    fields = {
        "typ": "push",
        "aud": DEPLOYMENT,
        "snd": str(device.id),
        "skid": device.kid,
        "rkid": rkid,
        "batch": batch.batch_id,
        "seq": batch.seq,
    }
    return EnvelopeHeader(**(fields | overrides))


_HPKE = {
    Suite.X25519_CHACHA20POLY1305: (hpke.KEM.X25519, hpke.AEAD.CHACHA20_POLY1305),
    Suite.X25519_AES256GCM: (hpke.KEM.X25519, hpke.AEAD.AES_256_GCM),
    Suite.MLKEM768X25519_CHACHA20POLY1305: (hpke.KEM.MLKEM768_X25519, hpke.AEAD.CHACHA20_POLY1305),
}


def frame(
    *,
    header: bytes | dict,
    body: bytes,
    recipient: TransportKeyPair,
    signer: Ed25519PrivateKey,
    suite: int = 1,
    version: int = 1,
    info_suite: int | None = None,
) -> bytes:
    """Encrypt ``body`` as is (compress it first if the header says zlib) and sign."""
    header_bytes = (
        header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    )
    prefix = b"CSYN" + struct.pack(">BBH", version, suite, len(header_bytes)) + header_bytes
    kem, aead = _HPKE[Suite(info_suite or suite)]
    hpke_suite = hpke.Suite(kem, hpke.KDF.HKDF_SHA256, aead)
    ciphertext = hpke_suite.encrypt(body, recipient.public_key(), info=INFO_LABEL + prefix)
    signed = prefix + struct.pack(">I", len(ciphertext)) + ciphertext
    return signed + signer.sign(SIG_LABEL + signed)


def resign(data: bytes, signer: Ed25519PrivateKey) -> bytes:
    """Replace the signature, as a sender holding ``signer`` can."""
    signed = data[:-64]
    return signed + signer.sign(SIG_LABEL + signed)


def regions(data: bytes) -> dict[str, range]:
    """Byte ranges of each part of a well-formed envelope."""
    header_len = struct.unpack_from(">H", data, 6)[0]
    header_end = 8 + header_len
    ct_len = struct.unpack_from(">I", data, header_end)[0]
    ct_start = header_end + 4
    return {
        "magic": range(0, 4),
        "version": range(4, 5),
        "suite": range(5, 6),
        "header_length": range(6, 8),
        "header": range(8, header_end),
        "ct_length": range(header_end, ct_start),
        "ciphertext": range(ct_start, ct_start + ct_len),
        "signature": range(ct_start + ct_len, len(data)),
    }
