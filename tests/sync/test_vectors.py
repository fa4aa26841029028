"""X7: the committed test vectors open exactly as they say, and the generator still works.

A vector is opened here with the package and a key ring built from the vector alone (not with
the generator's helpers), as a client in another language would.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from campsync_sync import (
    ERROR_STATUS,
    EnvelopeError,
    ErrorCode,
    Suite,
    TransportKeyPair,
    b64encode,
    decode_batch,
    open_envelope,
    verify_statement,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from scripts import make_vectors

from .envelopes import KeyRing

VECTORS = sorted((Path(__file__).parents[1] / "vectors").glob("*.json"))
ENVELOPE_ERRORS = {
    ErrorCode.BAD_ENVELOPE, ErrorCode.UNSUPPORTED_VERSION, ErrorCode.SUITE_NOT_ALLOWED,
    ErrorCode.WRONG_DEPLOYMENT, ErrorCode.UNKNOWN_KEY, ErrorCode.KEY_DESTROYED,
    ErrorCode.ENVELOPE_TOO_LARGE, ErrorCode.BAD_SIGNATURE, ErrorCode.DECRYPTION_FAILED,
    ErrorCode.BAD_PLAINTEXT, ErrorCode.TOO_MANY_OPERATIONS,
}  # fmt: skip


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def key_ring(config: dict) -> KeyRing:
    ring = KeyRing(destroyed=set(config["destroyed"]))
    for sender in config["senders"]:
        ring.senders[sender["snd"], sender["skid"]] = Ed25519PublicKey.from_public_bytes(
            unb64(sender["public_key"])
        )
    for recipient in config["recipients"]:
        pair = TransportKeyPair.from_private_bytes(
            recipient["kind"], unb64(recipient["private_key"])
        )
        assert pair.public_bytes == unb64(recipient["public_key"])
        assert pair.kid == recipient["rkid"]
        ring.add_transport(pair)
    return ring


def outcome(vector: dict) -> dict:
    config = vector["receiver"]
    try:
        opened = open_envelope(
            unb64(vector["sealed"]),
            keys=key_ring(config),
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
    return {"result": "ok", "plaintext": base64.b64encode(opened.plaintext).decode()}


@pytest.mark.parametrize(
    "path", [p for p in VECTORS if "statement" not in p.name], ids=lambda p: p.stem
)
def test_each_envelope_vector_opens_as_it_says(path: Path) -> None:
    vector = load(path)
    assert path.stem == f"v{vector['envelope_version']}-{vector['vector']}"
    assert outcome(vector) == vector["expected"]
    if vector["expected"]["result"] == "error":
        assert ERROR_STATUS[ErrorCode(vector["expected"]["code"])] == vector["expected"]["status"]


@pytest.mark.parametrize(
    "path", [p for p in VECTORS if "statement" in p.name], ids=lambda p: p.stem
)
def test_each_statement_vector_verifies(path: Path) -> None:
    vector = load(path)
    public = Ed25519PublicKey.from_public_bytes(unb64(vector["public_key"]))
    if "label" in vector:
        payload = unb64(vector["payload"])
        verify_statement(public, vector["label"], payload, b64encode(unb64(vector["signature"])))
        assert (
            unb64(vector["signed_message"])
            == b"campsync-statement-v1\x00" + vector["label"].encode() + b"\x00" + payload
        )
    else:
        public.verify(unb64(vector["signature"]), unb64(vector["message"]))


def test_the_vectors_cover_every_suite_and_every_envelope_error() -> None:
    vectors = [load(p) for p in VECTORS if "statement" not in p.name]
    assert {v["suite"] for v in vectors if v["expected"]["result"] == "ok"} >= {
        int(s) for s in Suite
    }
    assert {
        ErrorCode(v["expected"]["code"]) for v in vectors if v["expected"]["result"] == "error"
    } == ENVELOPE_ERRORS
    assert len(vectors) >= 35


def test_the_generator_still_makes_the_committed_set(tmp_path: Path) -> None:
    fresh = make_vectors.build()
    assert all(make_vectors.check(v) for v in fresh)
    assert sorted(f"v1-{v['vector']}.json" for v in fresh) == [p.name for p in VECTORS]
    assert make_vectors.main(["--out", str(tmp_path)]) == 0
    assert make_vectors.main(["--check", "--out", str(tmp_path)]) == 0
    broken = load(tmp_path / "v1-ok-uncompressed.json")
    broken["expected"]["plaintext"] = base64.b64encode(b"something else").decode()
    (tmp_path / "v1-ok-uncompressed.json").write_text(json.dumps(broken))
    assert make_vectors.main(["--check", "--out", str(tmp_path)]) == 1
