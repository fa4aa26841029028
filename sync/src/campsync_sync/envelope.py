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
body is compressed before encryption (large bodies on several cores, still as one zlib stream);
the header's ``len`` caps decompression.

A receiver checks cheapest first: size, magic, version, suite, framing, header, type,
deployment, declared length, sender key, signature, recipient key, decryption, decompression,
and finally the message itself (:func:`decode_batch`). Each failure raises its own
:class:`~campsync_sync.errors.EnvelopeError` subclass. ``docs/protocol.md`` is the normative
description.
"""

from __future__ import annotations

import json
import os
import re
import struct
import threading
import uuid
import zlib
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any, Final, Literal, NoReturn, Protocol, TypeVar

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import from_json

from campsync_sync.errors import (
    BadEnvelope,
    BadPlaintext,
    BadSignature,
    DecryptionFailed,
    SuiteNotAllowed,
    TooLarge,
    TooManyOperations,
    UnknownKey,
    UnsupportedVersion,
    WrongDeployment,
)
from campsync_sync.keys import KeyKind, RecipientPrivate, RecipientPublic
from campsync_sync.versions import (
    ENVELOPE_VERSION,
    HARD_MAX_ENVELOPE_BYTES,
    HARD_MAX_OPERATIONS,
    HARD_MAX_PLAINTEXT_BYTES,
    PROTOCOL_VERSION,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
)
from campsync_sync.wire import Batch

__all__ = [
    "ALL_SUITES",
    "DEFAULT_SUITE",
    "INFO_LABEL",
    "MAGIC",
    "MAX_HEADER_BYTES",
    "SIG_LABEL",
    "EnvelopeHeader",
    "EnvelopeType",
    "KeyResolver",
    "OpenedEnvelope",
    "SealedEnvelope",
    "Suite",
    "decode_batch",
    "decode_message",
    "open_envelope",
    "parse_envelope",
    "seal",
]

MAGIC: Final = b"CSYN"
SIG_LABEL: Final = b"campsync-envelope-v1/sig\x00"
INFO_LABEL: Final = b"campsync-envelope-v1/info\x00"
MAX_HEADER_BYTES: Final = 4096
_PREFIX = struct.Struct(">4sBBH")
_CT_LEN = struct.Struct(">I")
_SIG_LEN: Final = 64
# The smallest frame: prefix, a 2-byte header "{}", the length field and a signature.
_MIN_SIZE: Final = _PREFIX.size + 2 + _CT_LEN.size + _SIG_LEN
_UUID_TEXT = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


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
        return _HPKE[self]


_HPKE: Final = {
    suite: hpke.Suite(kem, hpke.KDF.HKDF_SHA256, aead)
    for suite, kem, aead in (
        (Suite.X25519_CHACHA20POLY1305, hpke.KEM.X25519, hpke.AEAD.CHACHA20_POLY1305),
        (Suite.X25519_AES256GCM, hpke.KEM.X25519, hpke.AEAD.AES_256_GCM),
        (
            Suite.MLKEM768X25519_CHACHA20POLY1305,
            hpke.KEM.MLKEM768_X25519,
            hpke.AEAD.CHACHA20_POLY1305,
        ),
    )
}
DEFAULT_SUITE: Final = Suite.X25519_CHACHA20POLY1305
ALL_SUITES: Final = frozenset(Suite)

_Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
EnvelopeType = Literal["push", "pull", "receipt"]


class EnvelopeHeader(BaseModel):
    """The signed, HPKE-bound header of an envelope (JSON keys are kept short).

    On the wire it is parsed strictly: no duplicate keys, no unknown keys, integers as JSON
    integers, ``batch`` as a lowercase hyphenated UUID.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    typ: EnvelopeType
    aud: _Id = Field(description="deployment id")
    snd: _Id = Field(description="sender id: a device id, or 'server'")
    skid: _Id = Field(description="sender signing-key id")
    rkid: _Id = Field(description="recipient transport-key id")
    batch: uuid.UUID
    seq: int = Field(ge=0, lt=1 << 63)
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema", ge=1, lt=1 << 16)
    len: int = Field(default=0, ge=0, le=HARD_MAX_PLAINTEXT_BYTES)
    zip: Literal["none", "zlib"] = "zlib"

    @field_validator("batch", mode="before")
    @classmethod
    def _canonical_uuid(cls, value: Any) -> Any:
        if isinstance(value, str) and _UUID_TEXT.match(value) is None:
            raise ValueError("batch must be a lowercase hyphenated UUID")
        return value


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
        try:
            body = self.suite.hpke().decrypt(
                self.ciphertext, key, info=INFO_LABEL + self.header_bytes
            )
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
            # One byte beyond the declared length is enough to detect a bomb, and memory
            # stays bounded by the declared length, itself capped before decryption.
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


# Large bodies are deflated in pieces on several cores (pigz's trick). Each cut loses the
# matches across it and each piece pays a thread hand-off, so pieces are at least 128 KiB and
# anything shorter than two pieces takes the plain one-call path.
_MIN_PIECE_BYTES: Final = 128 * 1024
_WORKERS: Final = min(4, os.cpu_count() or 1)
_ADLER32 = struct.Struct(">I")
_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        # A forked child inherits the executor but not its threads: work sent to it would
        # never run, so the child makes its own.
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(_WORKERS, "campsync-deflate"))
        return _pool[1]


def _deflate_piece(piece: memoryview, level: int, flush: int) -> bytes:
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(piece) + deflater.flush(flush)


def _compress(plaintext: bytes, level: int) -> bytes:
    """The RFC 1950 stream ``zlib.compress(plaintext, level)`` would give, on several cores.

    The output is not byte-identical to ``zlib.compress`` but inflates the same. Each piece is
    raw deflate started afresh, so it never points back into the piece before; a sync flush
    ends every piece but the last on a byte boundary without ending the stream. The pieces
    therefore concatenate into one deflate stream, and the zlib header and the Adler-32 of the
    whole plaintext wrap it. zlib releases the GIL while deflating, so threads run in parallel.
    """
    n_pieces = min(_WORKERS, len(plaintext) // _MIN_PIECE_BYTES)
    if n_pieces < 2:
        return zlib.compress(plaintext, level)
    # The header depends on the level only; taking it from zlib also refuses a bad level
    # exactly as zlib.compress does.
    zlib_header = zlib.compress(b"", level)[:2]
    size = -(-len(plaintext) // n_pieces)
    view = memoryview(plaintext)
    pool = _executor()
    rest = [
        pool.submit(
            _deflate_piece,
            view[start : start + size],
            level,
            zlib.Z_FINISH if start + size >= len(plaintext) else zlib.Z_SYNC_FLUSH,
        )
        for start in range(size, len(plaintext), size)
    ]
    # The calling thread deflates the first piece itself rather than wait idle.
    first = _deflate_piece(view[:size], level, zlib.Z_SYNC_FLUSH)
    checksum = _ADLER32.pack(zlib.adler32(plaintext))
    return b"".join([zlib_header, first, *(piece.result() for piece in rest), checksum])


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

    ``header.len`` is filled in here; the other header fields come from the caller. Level 1
    deflate keeps sealing a 500-operation batch within a few milliseconds; higher levels
    save little on JSON and cost several times more. A plaintext of 256 KiB or more is
    deflated in independent pieces on up to four cores; the body is still one standard zlib
    stream, so receivers need nothing special.

    Raises:
        UnknownKey: when ``recipient_key`` is not of the kind ``suite`` needs.
        TooLarge: when the plaintext or the result exceeds the hard limits.
    """
    if _kind_of(recipient_key) is not suite.key_kind:
        raise UnknownKey("recipient key is not of the suite's kind")
    if len(plaintext) > HARD_MAX_PLAINTEXT_BYTES:
        raise TooLarge("plaintext exceeds the hard limit")
    body = _compress(plaintext, level) if header.zip == "zlib" else plaintext
    header = header.model_copy(update={"len": len(plaintext)})
    header_bytes = header.model_dump_json(by_alias=True).encode()
    prefix = _PREFIX.pack(MAGIC, ENVELOPE_VERSION, suite, len(header_bytes)) + header_bytes
    ciphertext = suite.hpke().encrypt(body, recipient_key, info=INFO_LABEL + prefix)
    signed = prefix + _CT_LEN.pack(len(ciphertext)) + ciphertext
    sealed = signed + signing_key.sign(SIG_LABEL + signed)
    if len(sealed) > HARD_MAX_ENVELOPE_BYTES:
        raise TooLarge("sealed envelope exceeds the hard limit")
    return sealed


_HEADER_KEYS: Final = frozenset(
    {"typ", "aud", "snd", "skid", "rkid", "batch", "seq", "schema", "len", "zip"}
)


def _wire_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys) or not _HEADER_KEYS.issuperset(keys):
        raise ValueError("repeated or unknown header key")
    return dict(pairs)


def _parse_header(raw: bytes) -> EnvelopeHeader:
    try:
        header = EnvelopeHeader.model_validate_json(raw, strict=True)
        # Validation succeeded, so ``raw`` is a flat JSON object. Refuse repeated keys, which
        # another implementation's parser could read differently, and Python field names
        # (``schema_version``) that pydantic accepts besides the wire names.
        json.loads(raw, object_pairs_hook=_wire_keys)
    except (ValidationError, ValueError):
        raise BadEnvelope("envelope header is malformed") from None
    return header


def parse_envelope(
    data: bytes,
    *,
    deployment_id: str,
    allowed_suites: Collection[Suite] = ALL_SUITES,
    max_bytes: int = HARD_MAX_ENVELOPE_BYTES,
    max_plaintext: int = HARD_MAX_PLAINTEXT_BYTES,
    typ: EnvelopeType | None = None,
) -> SealedEnvelope:
    """Check an envelope's framing and header without touching any key.

    Args:
        data: the sealed bytes.
        deployment_id: this deployment's id; the header's ``aud`` must equal it.
        allowed_suites: the suites this receiver accepts (no negotiation, no fallback).
        max_bytes: the receiver's envelope size limit (never above the hard limit).
        max_plaintext: the receiver's plaintext size limit (never above the hard limit).
        typ: the envelope type the receiver expects; receivers should always pass it, so that
            a receipt or a pull page can never be taken for something else.

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
    if not 2 <= header_len <= MAX_HEADER_BYTES or header_end + _CT_LEN.size > len(data):
        raise BadEnvelope("envelope header length is invalid")
    (ct_len,) = _CT_LEN.unpack_from(data, header_end)
    ct_start = header_end + _CT_LEN.size
    if ct_start + ct_len + _SIG_LEN != len(data):
        raise BadEnvelope("envelope framing does not match its length")
    header = _parse_header(data[_PREFIX.size : header_end])
    if typ is not None and header.typ != typ:
        raise BadEnvelope(f"expected a {typ} envelope")
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
    typ: EnvelopeType | None = None,
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
        typ=typ,
    )
    sealed.verify(keys.sender_key(sealed.header))
    plaintext = sealed.decrypt(keys.recipient_key(sealed.header, sealed.suite))
    return OpenedEnvelope(sealed.suite, sealed.header, plaintext)


# ------------------------------------------------------------------------ messages

M = TypeVar("M", bound=BaseModel)


class _Versions(BaseModel):
    """Just enough of any message to tell a bad body from a newer protocol."""

    model_config = ConfigDict(extra="ignore")

    protocol: int = PROTOCOL_VERSION
    schema_version: int = SCHEMA_VERSION
    ops: list[Any] = Field(default_factory=list)


def _check_versions(protocol: int, schema_version: int) -> None:
    if protocol > PROTOCOL_VERSION:
        raise UnsupportedVersion(f"protocol version {protocol} is not supported")
    if schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise UnsupportedVersion(f"schema version {schema_version} is not supported")


def _refuse(body: object) -> NoReturn:
    """Explain why a body failed validation: a newer version, too many operations, or bad."""
    try:
        probe = (
            _Versions.model_validate_json(body)
            if isinstance(body, bytes)
            else _Versions.model_validate(body)
        )
    except ValidationError:
        raise BadPlaintext("envelope body is not a valid message") from None
    _check_versions(probe.protocol, probe.schema_version)
    if len(probe.ops) > HARD_MAX_OPERATIONS:
        raise TooManyOperations(f"a batch holds at most {HARD_MAX_OPERATIONS} operations")
    raise BadPlaintext("envelope body is not a valid message")


def decode_message(opened: OpenedEnvelope, model: type[M]) -> M:
    """Validate the plaintext of an opened envelope as ``model`` (a receipt, a pull page...).

    Raises:
        UnsupportedVersion: when the message is of a newer protocol or an unknown schema.
        BadPlaintext: when the plaintext is not a valid ``model``.
    """
    try:
        message = model.model_validate_json(opened.plaintext)
    except ValidationError:
        _refuse(opened.plaintext)
    _check_versions(
        getattr(message, "protocol", PROTOCOL_VERSION),
        getattr(message, "schema_version", SCHEMA_VERSION),
    )
    return message


def decode_batch(opened: OpenedEnvelope, *, max_operations: int = HARD_MAX_OPERATIONS) -> Batch:
    """Validate a pushed batch and check that it is the one its header announces.

    The operations themselves stay raw: each is read on its own by
    :func:`~campsync_sync.operations.read_operation`, so one bad operation never blocks a batch.

    Raises:
        BadEnvelope: when the envelope is not a push.
        UnsupportedVersion: when the header or the batch has an unknown protocol or schema.
        TooManyOperations: when the batch holds more than ``max_operations`` operations.
        BadPlaintext: when the batch is malformed, or its batch id, device id, seq or schema
            differ from the header's.
    """
    header = opened.header
    if header.typ != "push":
        raise BadEnvelope("expected a push envelope")
    _check_versions(PROTOCOL_VERSION, header.schema_version)
    # Parsing to Python objects first and validating those is a third faster than
    # validating the JSON text, because the operations stay raw (typed ``Any``).
    try:
        raw = from_json(opened.plaintext, allow_inf_nan=False)
    except ValueError:
        raise BadPlaintext("envelope body is not JSON") from None
    try:
        batch = Batch.model_validate(raw)
    except ValidationError:
        _refuse(raw)
    _check_versions(batch.protocol, batch.schema_version)
    if len(batch.ops) > min(max_operations, HARD_MAX_OPERATIONS):
        raise TooManyOperations(f"the batch holds more than {max_operations} operations")
    if (
        batch.batch_id != header.batch
        or str(batch.device_id) != header.snd
        or batch.seq != header.seq
        or batch.schema_version != header.schema_version
    ):
        raise BadPlaintext("the batch does not match its envelope header")
    return batch
