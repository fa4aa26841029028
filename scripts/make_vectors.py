"""Write the envelope test vectors: one JSON file per case in tests/vectors/.

Usage (from the repository root)::

    .venv/bin/python scripts/make_vectors.py           # write tests/vectors/*.json
    .venv/bin/python scripts/make_vectors.py --check   # check the committed ones (exit 1 if bad)

Each vector gives a receiver's configuration and keys, an envelope, and what opening it must
give: the plaintext, or the error (its ``ErrorCode``, HTTP status and Python class). A client in
another language verifies itself by opening every vector with its own code and comparing.
Binary values in the files are standard base64 with padding. The format is described in
docs/protocol.md, section "Test vectors".

Keys come from fixed seeds, so they are the same on every run; HPKE encapsulation is random, so
the sealed bytes are not. Vectors of a released envelope version are never rewritten: old vectors
must keep opening (test matrix X7). Rerun this script only to add vectors, or for a new version.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import struct
import sys
import uuid
import zlib
from pathlib import Path
from typing import Any

from campsync_sync import (
    ENVELOPE_VERSION,
    ERROR_STATUS,
    HARD_MAX_ENVELOPE_BYTES,
    HARD_MAX_OPERATIONS,
    HARD_MAX_PLAINTEXT_BYTES,
    HLC,
    BadEnvelope,
    BadPlaintext,
    BadSignature,
    Batch,
    BatchStatus,
    DecryptionFailed,
    EnvelopeError,
    EnvelopeHeader,
    FieldWrite,
    KeyDestroyed,
    KeyKind,
    OpResult,
    Outcome,
    PatchOp,
    Receipt,
    ServiceOp,
    SetChange,
    Suite,
    SuiteNotAllowed,
    TooLarge,
    TooManyOperations,
    TransportKeyPair,
    UnknownKey,
    UnsupportedVersion,
    WrongDeployment,
    b64decode,
    b64encode,
    decode_batch,
    enrollment_proof_message,
    key_id,
    open_envelope,
    seal,
    sign_statement,
    signing_public_bytes,
    verify_statement,
    wipe_statement,
)
from campsync_sync.envelope import INFO_LABEL, MAGIC, SIG_LABEL
from campsync_sync.keys import RecipientPrivate
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors"
DEPLOYMENT = "campsync-vectors"


def _seed(label: str, size: int = 32) -> bytes:
    return hashlib.sha512(b"campsync-test-vectors/" + label.encode()).digest()[:size]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


DEVICE_ID = uuid.UUID("0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")
OTHER_DEVICE_ID = uuid.UUID("0193a1b2-c3d4-7e5f-9b7c-8d9e0f1a2b3c")
DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(_seed("device-signing"))
OTHER_DEVICE_KEY = Ed25519PrivateKey.from_private_bytes(_seed("other-device-signing"))
SERVER_KEY = Ed25519PrivateKey.from_private_bytes(_seed("server-signing"))
TRANSPORT = {
    KeyKind.X25519: TransportKeyPair.from_private_bytes(KeyKind.X25519, _seed("transport-x25519")),
    KeyKind.MLKEM768_X25519: TransportKeyPair.from_private_bytes(
        KeyKind.MLKEM768_X25519, _seed("transport-mlkem768x25519")
    ),
}
STRANGER = TransportKeyPair.from_private_bytes(KeyKind.X25519, _seed("transport-not-ours"))
DESTROYED = TransportKeyPair.from_private_bytes(KeyKind.X25519, _seed("transport-destroyed"))
DEVICE_NODE = int.from_bytes(DEVICE_ID.bytes[8:], "big")
STAMP = str(HLC(1_795_000_000_000, 0, DEVICE_NODE))


def _kid(key: Ed25519PrivateKey) -> str:
    return key_id(signing_public_bytes(key))


def sample_batch(seq: int = 1, n_ops: int = 2) -> Batch:
    """A small push batch: a person registered, a food ration delivered."""
    person = uuid.UUID("0193a1b2-c3d5-7000-8000-000000000001")
    household = uuid.UUID("0193a1b2-c3d5-7000-8000-000000000002")
    ops: list[Any] = [
        PatchOp(
            op_id=uuid.UUID("0193a1b2-c3d5-7000-8000-000000000010"),
            entity="person",
            id=person,
            fields={
                "household_id": FieldWrite(value=str(household), hlc=STAMP),
                "given_name": FieldWrite(value="Zarghona", hlc=STAMP),
                "family_name_local": FieldWrite(value="ستانکزی", hlc=STAMP),
                "sex": FieldWrite(value="female", hlc=STAMP),
            },
            sets={"vulnerabilities": [SetChange(element="single_parent", present=True, hlc=STAMP)]},
        ),
        ServiceOp(
            op_id=uuid.UUID("0193a1b2-c3d5-7000-8000-000000000011"),
            id=uuid.UUID("0193a1b2-c3d5-7000-8000-000000000003"),
            hlc=STAMP,
            household_id=household,
            service="food_ration",
            delivered_at=dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.UTC),
        ),
    ]
    ops = (ops * n_ops)[:n_ops]
    return Batch.of(
        batch_id=uuid.UUID(f"0193a1b2-c3d5-7000-8000-{seq:012x}"),
        device_id=DEVICE_ID,
        seq=seq,
        hlc=STAMP,
        ops=ops,
    )


def push_header(batch: Batch, rkid: str, **changes: Any) -> EnvelopeHeader:
    header = EnvelopeHeader(
        typ="push",
        aud=DEPLOYMENT,
        snd=str(DEVICE_ID),
        skid=_kid(DEVICE_KEY),
        rkid=rkid,
        batch=batch.batch_id,
        seq=batch.seq,
    )
    return header.model_copy(update=changes)


def frame(
    header: bytes,
    body: bytes,
    *,
    recipient: TransportKeyPair,
    signer: Ed25519PrivateKey = DEVICE_KEY,
    suite: int = 1,
    version: int = ENVELOPE_VERSION,
) -> bytes:
    """Build an envelope byte by byte (``body`` is encrypted as given, compressed or not)."""
    prefix = MAGIC + struct.pack(">BBH", version, suite, len(header)) + header
    hpke_suite = Suite(suite if suite in Suite._value2member_map_ else 1).hpke()
    ciphertext = hpke_suite.encrypt(body, recipient.public_key(), info=INFO_LABEL + prefix)
    signed = prefix + struct.pack(">I", len(ciphertext)) + ciphertext
    return signed + signer.sign(SIG_LABEL + signed)


def resign(data: bytes, signer: Ed25519PrivateKey) -> bytes:
    return data[:-64] + signer.sign(SIG_LABEL + data[:-64])


def split(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(prefix with header, length field with ciphertext, signature)."""
    header_end = 8 + struct.unpack_from(">H", data, 6)[0]
    return data[:header_end], data[header_end:-64], data[-64:]


def with_header(data: bytes, header: dict[str, Any]) -> bytes:
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    _, body, signature = split(data)
    return data[:6] + struct.pack(">H", len(raw)) + raw + body + signature


def header_json(data: bytes) -> dict[str, Any]:
    prefix, _, _ = split(data)
    result: dict[str, Any] = json.loads(prefix[8:])
    return result


# --------------------------------------------------------------------------- the receiver


def receiver(**changes: Any) -> dict[str, Any]:
    """The receiving server's configuration and keys, as a vector states them."""
    config: dict[str, Any] = {
        "deployment_id": DEPLOYMENT,
        "expected_type": "push",
        "allowed_suites": [int(s) for s in Suite],
        "max_bytes": HARD_MAX_ENVELOPE_BYTES,
        "max_plaintext": HARD_MAX_PLAINTEXT_BYTES,
        "max_operations": HARD_MAX_OPERATIONS,
        "decode_batch": True,
        "senders": [
            {"snd": str(i), "skid": _kid(k), "public_key": _b64(signing_public_bytes(k))}
            for i, k in (
                (DEVICE_ID, DEVICE_KEY),
                (OTHER_DEVICE_ID, OTHER_DEVICE_KEY),
                ("server", SERVER_KEY),
            )
        ],
        "recipients": [
            {
                "rkid": p.kid,
                "kind": p.kind.value,
                "private_key": _b64(p.private_bytes),
                "public_key": _b64(p.public_bytes),
            }
            for p in TRANSPORT.values()
        ],
        "destroyed": [DESTROYED.kid],
    }
    return config | changes


class Resolver:
    """A KeyResolver built from a vector's ``receiver``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.senders = {
            (s["snd"], s["skid"]): Ed25519PublicKey.from_public_bytes(_unb64(s["public_key"]))
            for s in config["senders"]
        }
        self.recipients = {
            r["rkid"]: TransportKeyPair.from_private_bytes(r["kind"], _unb64(r["private_key"]))
            for r in config["recipients"]
        }
        self.destroyed = set(config["destroyed"])

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


def open_vector(vector: dict[str, Any]) -> dict[str, Any]:
    """Open a vector's envelope as its receiver would; the result in the vector's own terms."""
    config = vector["receiver"]
    try:
        opened = open_envelope(
            _unb64(vector["sealed"]),
            keys=Resolver(config),
            deployment_id=config["deployment_id"],
            allowed_suites={Suite(s) for s in config["allowed_suites"]},
            max_bytes=config["max_bytes"],
            max_plaintext=config["max_plaintext"],
            typ=config["expected_type"],
        )
        if config["decode_batch"]:
            decode_batch(opened, max_operations=config["max_operations"])
    except EnvelopeError as exc:
        return {
            "result": "error",
            "code": exc.code.value,
            "status": exc.status,
            "error": type(exc).__name__,
        }
    return {"result": "ok", "plaintext": _b64(opened.plaintext)}


# --------------------------------------------------------------------------- the vectors

Vector = dict[str, Any]


def _vector(
    name: str,
    description: str,
    data: bytes,
    *,
    config: dict[str, Any] | None = None,
    plaintext: bytes | None = None,
    error: type[EnvelopeError] | None = None,
) -> Vector:
    suite = data[5] if len(data) > 5 else None
    try:
        header: Any = header_json(data)
    except (ValueError, struct.error):
        header = None
    expected: dict[str, Any]
    if error is None:
        expected = {"result": "ok", "plaintext": _b64(plaintext or b"")}
    else:
        expected = {
            "result": "error",
            "code": error.code.value,
            "status": ERROR_STATUS[error.code],
            "error": error.__name__,
        }
    return {
        "vector": name,
        "description": description,
        "envelope_version": ENVELOPE_VERSION,
        "suite": suite,
        "receiver": config or receiver(),
        "header": header,
        "sealed": _b64(data),
        "expected": expected,
    }


def ok_vectors() -> list[Vector]:
    batch = sample_batch()
    plaintext = batch.model_dump_json().encode()
    vectors = []
    for suite in Suite:
        pair = TRANSPORT[suite.key_kind]
        data = seal(
            plaintext,
            push_header(batch, pair.kid),
            recipient_key=pair.public_key(),
            signing_key=DEVICE_KEY,
            suite=suite,
        )
        vectors.append(
            _vector(
                f"ok-suite{int(suite)}-{suite.name.lower().replace('_', '-')}",
                f"A push batch sealed with suite {int(suite)} ({suite.name}).",
                data,
                plaintext=plaintext,
            )
        )
    pair = TRANSPORT[KeyKind.X25519]
    data = seal(
        plaintext,
        push_header(batch, pair.kid, zip="none"),
        recipient_key=pair.public_key(),
        signing_key=DEVICE_KEY,
    )
    vectors.append(
        _vector("ok-uncompressed", 'A push batch with "zip": "none".', data, plaintext=plaintext)
    )
    receipt = Receipt(
        batch_id=batch.batch_id,
        device_id=DEVICE_ID,
        seq=1,
        status=BatchStatus.APPLIED,
        next_seq=2,
        commit_seq=918305,
        server_hlc=str(HLC(1_795_000_000_500, 0, 0)),
        received_at=dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC),
        results=[
            OpResult(index=0, op_id=uuid.UUID(batch.ops[0]["op_id"]), outcome=Outcome.APPLIED),
            OpResult(
                index=1,
                op_id=uuid.UUID(batch.ops[1]["op_id"]),
                outcome=Outcome.FLAGGED,
                flag_ids=[uuid.UUID("0193a1b2-c3d5-7000-8000-0000000000f1")],
            ),
        ],
    )
    receipt_bytes = receipt.model_dump_json().encode()
    header = EnvelopeHeader(
        typ="receipt",
        aud=DEPLOYMENT,
        snd="server",
        skid=_kid(SERVER_KEY),
        rkid=pair.kid,
        batch=batch.batch_id,
        seq=1,
    )
    data = seal(receipt_bytes, header, recipient_key=pair.public_key(), signing_key=SERVER_KEY)
    vectors.append(
        _vector(
            "ok-receipt",
            "A receipt sealed by the server (the device's exchange key stands in as recipient).",
            data,
            config=receiver(expected_type="receipt", decode_batch=False),
            plaintext=receipt_bytes,
        )
    )
    return vectors


def rejection_vectors() -> list[Vector]:
    batch = sample_batch()
    plaintext = batch.model_dump_json().encode()
    x25519, hybrid = TRANSPORT[KeyKind.X25519], TRANSPORT[KeyKind.MLKEM768_X25519]
    good = seal(
        plaintext,
        push_header(batch, x25519.kid),
        recipient_key=x25519.public_key(),
        signing_key=DEVICE_KEY,
    )
    header = header_json(good)
    raw_header = json.dumps(header, separators=(",", ":")).encode()
    strong = seal(
        plaintext,
        push_header(batch, hybrid.kid),
        recipient_key=hybrid.public_key(),
        signing_key=DEVICE_KEY,
        suite=Suite.MLKEM768X25519_CHACHA20POLY1305,
    )
    second = seal(
        sample_batch(seq=2).model_dump_json().encode(),
        push_header(sample_batch(seq=2), x25519.kid),
        recipient_key=x25519.public_key(),
        signing_key=DEVICE_KEY,
    )

    def framed(changes: dict[str, Any], body: bytes | None = None, **kw: Any) -> bytes:
        raw = json.dumps(header | changes, separators=(",", ":")).encode()
        return frame(
            raw,
            zlib.compress(plaintext) if body is None else body,
            recipient=kw.pop("recipient", x25519),
            **kw,
        )

    cases: list[tuple[str, str, bytes, dict[str, Any] | None, type[EnvelopeError]]] = [
        (
            "oversize",
            "Larger than the receiver's size limit (checked first, before anything is read).",
            good,
            receiver(max_bytes=len(good) - 1),
            TooLarge,
        ),
        ("truncated", "Shorter than the smallest possible envelope.", good[:40], None, BadEnvelope),
        ("bad-magic", 'Does not start with "CSYN".', b"CSYX" + good[4:], None, BadEnvelope),
        (
            "unknown-envelope-version",
            "Envelope version 2, which this receiver does not implement.",
            good[:4] + b"\x02" + good[5:],
            None,
            UnsupportedVersion,
        ),
        (
            "unknown-suite",
            "Suite id 9 is not a suite.",
            good[:5] + b"\x09" + good[6:],
            None,
            SuiteNotAllowed,
        ),
        (
            "suite-not-allowed",
            "Suite 1 while the receiver allows only suite 3 (no negotiation, no fallback).",
            good,
            receiver(allowed_suites=[3]),
            SuiteNotAllowed,
        ),
        (
            "header-length-invalid",
            "A header length of 0.",
            good[:6] + b"\x00\x00" + good[8:],
            None,
            BadEnvelope,
        ),
        (
            "framing-mismatch",
            "One byte more than the lengths announce.",
            good + b"\x00",
            None,
            BadEnvelope,
        ),
        (
            "header-not-json",
            "The header is not JSON.",
            frame(b"not json", b"", recipient=x25519),
            None,
            BadEnvelope,
        ),
        (
            "header-duplicate-key",
            'The header repeats "seq".',
            frame(
                raw_header[:-1] + b',"seq":' + str(batch.seq).encode() + b"}",
                zlib.compress(plaintext),
                recipient=x25519,
            ),
            None,
            BadEnvelope,
        ),
        (
            "header-string-integer",
            'The header gives "seq" as a string.',
            framed({"seq": str(batch.seq)}),
            None,
            BadEnvelope,
        ),
        (
            "header-unknown-key",
            "The header has a key the receiver does not know.",
            framed({"note": "x"}),
            None,
            BadEnvelope,
        ),
        (
            "header-uppercase-batch-id",
            "The batch id is not a lowercase hyphenated UUID.",
            framed({"batch": header["batch"].upper()}),
            None,
            BadEnvelope,
        ),
        (
            "wrong-type",
            "A receipt sent where a push is expected.",
            framed({"typ": "receipt"}),
            None,
            BadEnvelope,
        ),
        (
            "wrong-deployment",
            "Sealed for another deployment.",
            framed({"aud": "another-deployment"}),
            None,
            WrongDeployment,
        ),
        (
            "declared-plaintext-too-large",
            "Declares more plaintext than the receiver accepts.",
            good,
            receiver(max_plaintext=100),
            TooLarge,
        ),
        (
            "unknown-sender",
            "Signed by a device the receiver does not know.",
            framed({"snd": str(uuid.UUID(int=1)), "skid": "00000000000000ff"}),
            None,
            UnknownKey,
        ),
        (
            "unknown-recipient-key",
            "Sealed to a transport key id the receiver does not hold.",
            framed({"rkid": STRANGER.kid}, recipient=STRANGER),
            None,
            UnknownKey,
        ),
        (
            "key-destroyed",
            "Sealed to a transport key the receiver has destroyed; the sender must re-seal.",
            framed({"rkid": DESTROYED.kid}, recipient=DESTROYED),
            None,
            KeyDestroyed,
        ),
        (
            "bad-signature",
            "One ciphertext bit flipped after signing.",
            good[:-100] + bytes([good[-100] ^ 1]) + good[-99:],
            None,
            BadSignature,
        ),
        (
            "spliced-signature",
            "The signature of another envelope.",
            good[:-64] + second[-64:],
            None,
            BadSignature,
        ),
        (
            "replayed-header-other-body",
            "This header over another envelope's body, not re-signed.",
            split(good)[0] + split(second)[1] + split(second)[2],
            None,
            BadSignature,
        ),
        (
            "replayed-header-other-body-resigned",
            "This header over another envelope's body, re-signed: the HPKE info differs.",
            resign(split(good)[0] + split(second)[1] + second[-64:], DEVICE_KEY),
            None,
            DecryptionFailed,
        ),
        (
            "device-swapped-resigned",
            "Another enrolled device puts its id and key id in the header and re-signs.",
            resign(
                with_header(
                    good, header | {"snd": str(OTHER_DEVICE_ID), "skid": _kid(OTHER_DEVICE_KEY)}
                ),
                OTHER_DEVICE_KEY,
            ),
            None,
            DecryptionFailed,
        ),
        (
            "suite-downgrade",
            "Suite byte changed from 3 to 1.",
            strong[:5] + b"\x01" + strong[6:],
            None,
            BadSignature,
        ),
        (
            "suite-downgrade-resigned",
            "Suite byte changed from 3 to 1 and re-signed: the named key is not an X25519 key.",
            resign(strong[:5] + b"\x01" + strong[6:], DEVICE_KEY),
            None,
            UnknownKey,
        ),
        (
            "wrong-recipient-key",
            "Sealed to another key but labelled with the receiver's key id.",
            framed({}, recipient=STRANGER),
            None,
            DecryptionFailed,
        ),
        (
            "decompression-bomb",
            "10 MiB of zeros declared as 1,000 bytes.",
            framed({"len": 1000}, zlib.compress(bytes(10 * 1024 * 1024), 9)),
            None,
            TooLarge,
        ),
        (
            "not-zlib",
            "The body is not a zlib stream.",
            framed({}, b"\x00" * 32),
            None,
            BadPlaintext,
        ),
        (
            "length-mismatch",
            "The body decompresses to fewer bytes than declared.",
            framed({"len": len(plaintext) + 1}),
            None,
            BadPlaintext,
        ),
        (
            "batch-header-mismatch",
            "The batch inside names another seq than its header.",
            framed({"seq": 7}),
            None,
            BadPlaintext,
        ),
        (
            "unsupported-schema",
            "The header declares schema 2, which this receiver does not know.",
            framed({"schema": 2}),
            None,
            UnsupportedVersion,
        ),
        (
            "too-many-operations",
            "Two operations where the receiver accepts one.",
            good,
            receiver(max_operations=1),
            TooManyOperations,
        ),
    ]
    return [
        _vector(f"reject-{name}", description, data, config=config, error=error)
        for name, description, data, config, error in cases
    ]


def statement_vectors() -> list[Vector]:
    """Signatures outside envelopes: a manifest statement, a wipe order, an enrolment proof."""
    signing_public = signing_public_bytes(DEVICE_KEY)
    exchange_public = TRANSPORT[KeyKind.X25519].public_bytes
    proof = enrollment_proof_message("ABCD-EFGH-JKLM", DEPLOYMENT, signing_public, exchange_public)
    wipe = wipe_statement(DEPLOYMENT, DEVICE_ID)
    manifest_payload = b'{"protocol":1,"deployment_id":"campsync-vectors"}'
    return [
        {
            "vector": "statement-enrollment-proof",
            "description": "Proof of possession: plain Ed25519 over enrollment_proof_message.",
            "public_key": _b64(signing_public),
            "message": _b64(proof),
            "signature": _b64(DEVICE_KEY.sign(proof)),
        },
        {
            "vector": "statement-wipe",
            "description": 'A wipe order: a statement with label "wipe" over wipe_statement.',
            "public_key": _b64(signing_public_bytes(SERVER_KEY)),
            "label": "wipe",
            "payload": _b64(wipe),
            "signed_message": _b64(b"campsync-statement-v1\x00wipe\x00" + wipe),
            "signature": _b64(b64decode(sign_statement(SERVER_KEY, "wipe", wipe))),
        },
        {
            "vector": "statement-manifest",
            "description": 'A statement with label "manifest" over a manifest payload.',
            "public_key": _b64(signing_public_bytes(SERVER_KEY)),
            "label": "manifest",
            "payload": _b64(manifest_payload),
            "signed_message": _b64(b"campsync-statement-v1\x00manifest\x00" + manifest_payload),
            "signature": _b64(b64decode(sign_statement(SERVER_KEY, "manifest", manifest_payload))),
        },
    ]


def check_statement(vector: Vector) -> bool:
    public = Ed25519PublicKey.from_public_bytes(_unb64(vector["public_key"]))
    if "label" not in vector:
        public.verify(_unb64(vector["signature"]), _unb64(vector["message"]))
        return True
    signature = b64encode(_unb64(vector["signature"]))  # statements take the wire's URL-safe form
    verify_statement(public, vector["label"], _unb64(vector["payload"]), signature)
    label: str = vector["label"]
    expected = b"campsync-statement-v1\x00" + label.encode() + b"\x00" + _unb64(vector["payload"])
    return expected == _unb64(vector["signed_message"])


def build() -> list[Vector]:
    """Every vector, freshly sealed."""
    return [*ok_vectors(), *rejection_vectors(), *statement_vectors()]


def check(vector: Vector) -> bool:
    """Whether a vector opens (or verifies) as it says."""
    if vector["vector"].startswith("statement-"):
        return check_statement(vector)
    return bool(open_vector(vector) == vector["expected"])


def _write(vectors: list[Vector], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("v1-*.json"):
        old.unlink()
    for vector in vectors:
        path = directory / f"v{ENVELOPE_VERSION}-{vector['vector']}.json"
        path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write or check the envelope test vectors.")
    parser.add_argument("--check", action="store_true", help="check the committed vectors instead")
    parser.add_argument(
        "--out", type=Path, default=VECTORS, help="directory (default tests/vectors)"
    )
    args = parser.parse_args(argv)
    if args.check:
        failures = [
            p.name for p in sorted(args.out.glob("*.json")) if not check(json.loads(p.read_text()))
        ]
        print(f"{len(failures)} failing" + (f": {', '.join(failures)}" if failures else ""))
        return 1 if failures else 0
    vectors = build()
    bad = [v["vector"] for v in vectors if not check(v)]
    if bad:
        print(f"refusing to write vectors that do not open as they say: {bad}", file=sys.stderr)
        return 1
    _write(vectors, args.out)
    print(f"wrote {len(vectors)} vectors to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
