"""Sealed envelopes: HPKE to the recipient, Ed25519 by the sender, header bound into both.

Layout of version 1 (all integers big-endian)::

    offset      size  field
    0           4     magic "CSYN"
    4           1     envelope version (1)
    5           1     suite id (see Suite)
    6           2     header length H (1..4096)
    8           H     header: UTF-8 JSON object (EnvelopeHeader), never re-serialised
    8+H         4     ciphertext length C
    12+H        C     HPKE base-mode output: encapsulated key || AEAD ciphertext
    12+H+C      64    Ed25519 signature over SIG_LABEL || bytes[0 : 12+H+C]

The HPKE ``info`` is INFO_LABEL || bytes[0 : 8+H], so changing any header byte (the suite, the
device id, the batch id, the seq...) makes decryption fail even if the attacker re-signs. The
body is compressed before encryption; the header's ``len`` caps decompression.

A receiver checks cheapest first: size, magic, version, suite, framing, header, deployment,
sender key, signature, recipient key, decryption, decompression. Each failure raises its own
:class:`~campsync_sync.errors.EnvelopeError` subclass.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Final, Literal, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from campsync_sync.errors import (
    BadEnvelope,
    BadPlaintext,
    BadSignature,
    DecryptionFailed,
    SuiteNotAllowed,
    TooLarge,
    UnknownKey,
    UnsupportedVersion,
    WrongDeployment,
)
from campsync_sync.keys import KeyKind, RecipientPrivate, RecipientPublic
from campsync_sync.versions import (
    ENVELOPE_VERSION,
    HARD_MAX_ENVELOPE_BYTES,
    HARD_MAX_PLAINTEXT_BYTES,
    SCHEMA_VERSION,
)

__all__ = [
    "ALL_SUITES",
    "DEFAULT_SUITE",
    "INFO_LABEL",
    "MAGIC",
    "SIG_LABEL",
    "EnvelopeHeader",
    "KeyResolver",
    "OpenedEnvelope",
    "SealedEnvelope",
    "Suite",
    "open_envelope",
    "parse_envelope",
    "seal",
]

MAGIC: Final = b"CSYN"
SIG_LABEL: Final = b"campsync-envelope-v1/sig\x00"
INFO_LABEL: Final = b"campsync-envelope-v1/info\x00"
_PREFIX = struct.Struct(">4sBBH")
_CT_LEN = struct.Struct(">I")
_SIG_LEN: Final = 64
_MAX_HEADER: Final = 4096
_MIN_SIZE: Final = _PREFIX.size + 2 + _CT_LEN.size + _SIG_LEN


class Suite(IntEnum):
    """HPKE cipher suites (all base mode, HKDF-SHA256). Ids are fixed forever."""

    X25519_CHACHA20POLY1305 = 1
    X25519_AES256GCM = 2
    MLKEM768X25519_CHACHA20POLY1305 = 3

    @property
    def key_kind(self) -> KeyKind:
        """The kind of recipient key this suite encrypts to."""
        if self is Suite.MLKEM768X25519_CHACHA20POLY1305:
            return KeyKind.MLKEM768_X25519
        return KeyKind.X25519

    def hpke(self) -> hpke.Suite:
        """The ``cryptography`` HPKE suite object."""
        kem, aead = _HPKE[self]
        return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, aead)


_HPKE: Final = {
    Suite.X25519_CHACHA20POLY1305: (hpke.KEM.X25519, hpke.AEAD.CHACHA20_POLY1305),
    Suite.X25519_AES256GCM: (hpke.KEM.X25519, hpke.AEAD.AES_256_GCM),
    Suite.MLKEM768X25519_CHACHA20POLY1305: (hpke.KEM.MLKEM768_X25519, hpke.AEAD.CHACHA20_POLY1305),
}
DEFAULT_SUITE: Final = Suite.X25519_CHACHA20POLY1305
ALL_SUITES: Final = frozenset(Suite)

_Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class EnvelopeHeader(BaseModel):
    """The signed, HPKE-bound header of an envelope (JSON keys are kept short)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    typ: Literal["push", "pull", "receipt"]
    aud: _Id = Field(description="deployment id")
    snd: _Id = Field(description="sender id: a device id, or 'server'")
    skid: _Id = Field(description="sender signing-key id")
    rkid: _Id = Field(description="recipient transport-key id")
    batch: uuid.UUID
    seq: int = Field(ge=0, lt=1 << 63)
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema", ge=1, lt=1 << 16)
    len: int = Field(ge=0, le=HARD_MAX_PLAINTEXT_BYTES)
    zip: Literal["none", "zlib"] = "zlib"


class KeyResolver(Protocol):
    """What a receiver knows about keys; each method raises UnknownKey or KeyDestroyed."""

    def sender_key(self, header: EnvelopeHeader) -> Ed25519PublicKey:
        """The signing key of ``header.snd`` with id ``header.skid``."""
        ...

    def recipient_key(self, header: EnvelopeHeader, suite: Suite) -> RecipientPrivate:
        """The private transport key ``header.rkid``, of the kind ``suite`` needs."""
        ...


@dataclass(frozen=True, slots=True)
class SealedEnvelope:
    """A structurally valid envelope whose signature and body are not yet checked."""

    suite: Suite
    header: EnvelopeHeader
    header_bytes: bytes
    signed: bytes
    ciphertext: bytes
    signature: bytes

    def verify(self, key: Ed25519PublicKey) -> None:
        """Check the sender's signature.

        Raises:
            BadSignature: when it does not verify.
        """
        try:
            key.verify(self.signature, SIG_LABEL + self.signed)
        except InvalidSignature:
            raise BadSignature("envelope signature does not verify") from None

    def decrypt(self, key: RecipientPrivate) -> bytes:
        """Decrypt and decompress the body; call only after :meth:`verify`.

        Raises:
            UnknownKey: when ``key`` is not of the kind the suite needs.
            DecryptionFailed: when HPKE decryption fails.
            TooLarge: when the body decompresses beyond the header's ``len``.
            BadPlaintext: when it decompresses to less, or is not valid compressed data.
        """
        if _kind_of(key) is not self.suite.key_kind:
            raise UnknownKey("recipient key is not of the suite's kind")
        info = INFO_LABEL + self.header_bytes
        try:
            body = self.suite.hpke().decrypt(self.ciphertext, key, info=info)
        except (InvalidTag, ValueError):
            raise DecryptionFailed("envelope body does not decrypt") from None
        return _decompress(body, self.header)


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    """A verified, decrypted envelope."""

    suite: Suite
    header: EnvelopeHeader
    plaintext: bytes


def _kind_of(key: RecipientPrivate | RecipientPublic) -> KeyKind:
    if isinstance(key, hpke.MLKEM768X25519PrivateKey | hpke.MLKEM768X25519PublicKey):
        return KeyKind.MLKEM768_X25519
    return KeyKind.X25519


def _decompress(body: bytes, header: EnvelopeHeader) -> bytes:
    if header.zip == "none":
        data = body
    else:
        inflater = zlib.decompressobj()
        try:
            # One byte beyond the declared length is enough to detect a bomb.
            data = inflater.decompress(body, header.len + 1)
        except zlib.error:
            raise BadPlaintext("envelope body is not valid zlib data") from None
        if len(data) > header.len:
            raise TooLarge("envelope body decompresses beyond its declared length")
        if not inflater.eof or inflater.unused_data:
            raise BadPlaintext("envelope body is truncated or has trailing data")
    if len(data) != header.len:
        raise BadPlaintext("envelope body length differs from the header")
    return data


def seal(
    plaintext: bytes,
    header: EnvelopeHeader,
    *,
    recipient_key: RecipientPublic,
    signing_key: Ed25519PrivateKey,
    suite: Suite = DEFAULT_SUITE,
    level: int = 1,
) -> bytes:
    """Compress, encrypt and sign ``plaintext``.

    ``header.len`` and ``header.zip`` are filled in here; the other header fields come
    from the caller.

    Raises:
        UnknownKey: when ``recipient_key`` is not of the kind ``suite`` needs.
        TooLarge: when the plaintext or the result exceeds the hard limits.
    """
    if _kind_of(recipient_key) is not suite.key_kind:
        raise UnknownKey("recipient key is not of the suite's kind")
    if len(plaintext) > HARD_MAX_PLAINTEXT_BYTES:
        raise TooLarge("plaintext exceeds the hard limit")
    body = zlib.compress(plaintext, level) if header.zip == "zlib" else plaintext
    header = header.model_copy(update={"len": len(plaintext)})
    header_bytes = header.model_dump_json(by_alias=True).encode()
    prefix = _PREFIX.pack(MAGIC, ENVELOPE_VERSION, suite, len(header_bytes)) + header_bytes
    ciphertext = suite.hpke().encrypt(body, recipient_key, info=INFO_LABEL + prefix)
    signed = prefix + _CT_LEN.pack(len(ciphertext)) + ciphertext
    sealed = signed + signing_key.sign(SIG_LABEL + signed)
    if len(sealed) > HARD_MAX_ENVELOPE_BYTES:
        raise TooLarge("sealed envelope exceeds the hard limit")
    return sealed


def parse_envelope(
    data: bytes,
    *,
    deployment_id: str,
    allowed_suites: Collection[Suite] = ALL_SUITES,
    max_bytes: int = HARD_MAX_ENVELOPE_BYTES,
    max_plaintext: int = HARD_MAX_PLAINTEXT_BYTES,
) -> SealedEnvelope:
    """Check an envelope's framing and header without touching any key.

    Raises:
        TooLarge, BadEnvelope, UnsupportedVersion, SuiteNotAllowed, WrongDeployment.
    """
    if len(data) > min(max_bytes, HARD_MAX_ENVELOPE_BYTES):
        raise TooLarge("envelope exceeds the size limit")
    if len(data) < _MIN_SIZE:
        raise BadEnvelope("envelope is truncated")
    magic, version, suite_id, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BadEnvelope("not a campsync envelope")
    if version != ENVELOPE_VERSION:
        raise UnsupportedVersion(f"envelope version {version} is not supported")
    if suite_id not in Suite._value2member_map_ or Suite(suite_id) not in allowed_suites:
        raise SuiteNotAllowed(f"suite {suite_id} is not allowed")
    suite = Suite(suite_id)
    header_end = _PREFIX.size + header_len
    if not 0 < header_len <= _MAX_HEADER or header_end + _CT_LEN.size > len(data):
        raise BadEnvelope("envelope header length is invalid")
    (ct_len,) = _CT_LEN.unpack_from(data, header_end)
    ct_start = header_end + _CT_LEN.size
    if ct_start + ct_len + _SIG_LEN != len(data):
        raise BadEnvelope("envelope framing does not match its length")
    try:
        header = EnvelopeHeader.model_validate_json(data[_PREFIX.size : header_end])
    except ValidationError:
        raise BadEnvelope("envelope header is malformed") from None
    if header.aud != deployment_id:
        raise WrongDeployment("envelope was sealed for another deployment")
    if header.len > min(max_plaintext, HARD_MAX_PLAINTEXT_BYTES):
        raise TooLarge("declared plaintext exceeds the limit")
    return SealedEnvelope(
        suite=suite,
        header=header,
        header_bytes=data[:header_end],
        signed=data[: ct_start + ct_len],
        ciphertext=data[ct_start : ct_start + ct_len],
        signature=data[ct_start + ct_len :],
    )


def open_envelope(
    data: bytes,
    *,
    keys: KeyResolver,
    deployment_id: str,
    allowed_suites: Collection[Suite] = ALL_SUITES,
    max_bytes: int = HARD_MAX_ENVELOPE_BYTES,
    max_plaintext: int = HARD_MAX_PLAINTEXT_BYTES,
) -> OpenedEnvelope:
    """Parse, verify and decrypt an envelope in one call, cheapest check first.

    A server that must look up receipts between the signature and the decryption uses
    :func:`parse_envelope`, :meth:`SealedEnvelope.verify` and :meth:`SealedEnvelope.decrypt`.

    Raises:
        EnvelopeError: one subclass per failure (see the module docstring).
    """
    sealed = parse_envelope(
        data,
        deployment_id=deployment_id,
        allowed_suites=allowed_suites,
        max_bytes=max_bytes,
        max_plaintext=max_plaintext,
    )
    sealed.verify(keys.sender_key(sealed.header))
    plaintext = sealed.decrypt(keys.recipient_key(sealed.header, sealed.suite))
    return OpenedEnvelope(sealed.suite, sealed.header, plaintext)
