"""Keys: serialisation round trips, ids, base64, signed statements, the key manifest."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest
from campsync_sync import (
    BadSignature,
    KeyInfo,
    KeyKind,
    KeyManifest,
    SignedManifest,
    TransportKeyPair,
    UnknownKey,
    WrongDeployment,
    b64decode,
    b64encode,
    enrollment_proof_message,
    fingerprint,
    key_id,
    load_signing_public,
    load_transport_public,
    sign_manifest,
    sign_statement,
    signing_public_bytes,
    token_message,
    verify_manifest,
    verify_statement,
    wipe_statement,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from .strategies import PROPERTY

DEVICE = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")
NOW = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


@PROPERTY
@given(st.binary(max_size=100))
def test_base64_round_trips_in_one_canonical_form(data: bytes) -> None:
    text = b64encode(data)
    assert "=" not in text
    assert b64decode(text) == data
    assert b64decode(text + "=" * (-len(text) % 4)) == data  # padding is accepted


@pytest.mark.parametrize("text", ["YW!j", "YW+/", "YW/j", "YR", "Y", "YQ===", " YQ", "YQ\n", 5])
def test_base64_refuses_other_alphabets_junk_and_non_canonical_bits(text) -> None:
    with pytest.raises(ValueError, match="base64"):
        b64decode(text)  # type: ignore[arg-type]


def test_ids_and_fingerprints() -> None:
    public = bytes(range(32))
    digest = hashlib.sha256(public).hexdigest()
    assert key_id(public) == digest[:16]
    assert fingerprint(public).replace("-", "") == digest
    assert fingerprint(public).count("-") == 15


def test_signing_keys() -> None:
    key = Ed25519PrivateKey.generate()
    raw = signing_public_bytes(key)
    assert raw == signing_public_bytes(key.public_key())
    assert len(raw) == 32
    assert load_signing_public(raw).public_bytes_raw() == raw
    with pytest.raises(UnknownKey):
        load_signing_public(b"short")


@pytest.mark.parametrize(
    "kind", [KeyKind.X25519, KeyKind.MLKEM768_X25519, "x25519", "mlkem768x25519"]
)
def test_transport_key_pairs_round_trip_through_bytes(kind) -> None:
    pair = TransportKeyPair.generate(kind)
    assert pair.kind is KeyKind(kind), "plain strings are normalised"
    assert len(pair.private_bytes) == 32  # X25519 scalar, or X-Wing seed
    assert len(pair.public_bytes) == (32 if pair.kind is KeyKind.X25519 else 1216)
    again = TransportKeyPair.from_private_bytes(str(kind), pair.private_bytes)
    assert again == pair
    assert again.kid == key_id(pair.public_bytes)
    assert type(pair.private_key()).__name__.endswith("PrivateKey")
    loaded = load_transport_public(kind, pair.public_bytes)
    assert type(loaded) is type(pair.public_key())
    assert pair.private_bytes.hex() not in repr(pair), "private keys never reach a log"


def test_the_hybrid_key_is_x_wing() -> None:
    """draft-connolly-cfrg-xwing-kem, test vector 1: the seed and its 1216-byte public key."""
    seed = bytes.fromhex("7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26")
    pair = TransportKeyPair.from_private_bytes(KeyKind.MLKEM768_X25519, seed)
    assert (
        pair.public_bytes[:32].hex()
        == "e2236b35a8c24b39b10aa1323a96a919a2ced88400633a7b07131713fc14b2b5"
    )
    assert (
        pair.public_bytes[-32:].hex()
        == "859edb06eff389b27dce59844570216223593d4ba32d9abac8cd049040ef6534"
    )
    assert hashlib.sha256(pair.public_bytes).hexdigest() == (
        "2e816deebcd76c5c80d0cd2d174478871658e8e2ff42bc9d4a6e486372e856bb"
    )
    # The expanded form (ML-KEM seed and X25519 key) names the same key.
    expanded = TransportKeyPair.from_private_bytes(
        KeyKind.MLKEM768_X25519, hashlib.shake_256(seed).digest(96)
    )
    assert expanded.public_bytes == pair.public_bytes


def test_transport_keys_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="hybrid"):
        TransportKeyPair.from_private_bytes(KeyKind.MLKEM768_X25519, bytes(33))
    with pytest.raises(ValueError):
        TransportKeyPair.from_private_bytes("rsa", bytes(32))
    with pytest.raises(ValueError):
        TransportKeyPair(kind="rsa", private_bytes=b"", public_bytes=b"")  # type: ignore[arg-type]
    for kind, data in [("x25519", b"short"), ("mlkem768x25519", bytes(1215)), ("rsa", bytes(32))]:
        with pytest.raises(UnknownKey):
            load_transport_public(kind, data)
    with pytest.raises(UnknownKey):
        load_transport_public(KeyKind.MLKEM768_X25519, b"\xff" * 1216)  # coefficients out of range


def test_statements_are_bound_to_their_purpose() -> None:
    key = Ed25519PrivateKey.generate()
    signature = sign_statement(key, "wipe", b"payload")
    verify_statement(key.public_key(), "wipe", b"payload", signature)
    for label, payload, sig in [
        ("manifest", b"payload", signature),
        ("wipe", b"payload!", signature),
        ("wipe", b"payload", b64encode(bytes(64))),
        ("wipe", b"payload", "not base64!"),
    ]:
        with pytest.raises(BadSignature):
            verify_statement(key.public_key(), label, payload, sig)
    with pytest.raises(BadSignature):
        verify_statement(Ed25519PrivateKey.generate().public_key(), "wipe", b"payload", signature)
    for label in ("", "a\x00b"):
        with pytest.raises(ValueError, match="label"):
            sign_statement(key, label, b"")


def test_proof_wipe_and_token_messages() -> None:
    signing = signing_public_bytes(Ed25519PrivateKey.generate())
    exchange = X25519PrivateKey.generate().public_key().public_bytes_raw()
    proof = enrollment_proof_message("ABCD-EFGH", "dep-1", signing, exchange)
    assert proof == b"campsync-enroll-v1\x00dep-1\x00ABCD-EFGH\x00" + signing + exchange
    assert wipe_statement("dep-1", DEVICE) == b"campsync-wipe-v1\x00dep-1\x00" + DEVICE.bytes
    assert token_message("dep-1", DEVICE, "c1") == f"dep-1\x00{DEVICE}\x00c1".encode()
    with pytest.raises(ValueError, match="32-byte"):
        enrollment_proof_message("code", "dep-1", signing, exchange + b"x")
    for call in (
        lambda: enrollment_proof_message("co\x00de", "dep-1", signing, exchange),
        lambda: wipe_statement("dep\x00", DEVICE),
        lambda: token_message("dep", DEVICE, "c\x00"),
    ):
        with pytest.raises(ValueError, match="NUL"):
            call()


def manifest(signing: Ed25519PrivateKey, deployment: str = "dep-1") -> KeyManifest:
    transport = TransportKeyPair.generate()
    return KeyManifest(
        deployment_id=deployment,
        issued_at=NOW,
        signing_key=KeyInfo(
            kid=key_id(signing_public_bytes(signing)),
            suite="ed25519",
            public_key=b64encode(signing_public_bytes(signing)),
            not_before=NOW,
        ),
        transport_keys=[
            KeyInfo(
                kid=transport.kid,
                suite="x25519",
                public_key=b64encode(transport.public_bytes),
                not_before=NOW,
            )
        ],
    )


def test_a_signed_manifest_verifies_against_the_pinned_key_only() -> None:
    server = Ed25519PrivateKey.generate()
    pinned = fingerprint(signing_public_bytes(server))
    keys = manifest(server)
    signed = sign_manifest(server, keys)
    assert verify_manifest(signed, pinned_fingerprint=pinned, deployment_id="dep-1") == keys
    assert SignedManifest.model_validate_json(signed.model_dump_json()) == signed

    impostor = Ed25519PrivateKey.generate()
    with pytest.raises(UnknownKey):  # a manifest naming another signing key
        verify_manifest(
            sign_manifest(impostor, manifest(impostor)),
            pinned_fingerprint=pinned,
            deployment_id="dep-1",
        )
    forged = SignedManifest(
        payload=signed.payload,
        signature=sign_statement(impostor, "manifest", signed.payload.encode()),
    )
    with pytest.raises(BadSignature):
        verify_manifest(forged, pinned_fingerprint=pinned, deployment_id="dep-1")
    tampered = SignedManifest(
        payload=signed.payload.replace("dep-1", "dep-2"), signature=signed.signature
    )
    with pytest.raises(BadSignature):
        verify_manifest(tampered, pinned_fingerprint=pinned, deployment_id="dep-2")
    with pytest.raises(WrongDeployment):
        verify_manifest(
            sign_manifest(server, manifest(server, "dep-2")),
            pinned_fingerprint=pinned,
            deployment_id="dep-1",
        )
    for payload in (
        "{}",
        "not json",
        signed.payload.replace(b64encode(signing_public_bytes(server)), "!!"),
    ):
        with pytest.raises(BadSignature, match="malformed"):
            verify_manifest(
                SignedManifest(payload=payload, signature=signed.signature),
                pinned_fingerprint=pinned,
                deployment_id="dep-1",
            )
