"""Sealed envelopes: round trips for every suite, the layout, each check and its typed error."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import struct
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from campsync_sync import (
    ALL_SUITES,
    DEFAULT_SUITE,
    HARD_MAX_OPERATIONS,
    HARD_MAX_PLAINTEXT_BYTES,
    PROTOCOL_VERSION,
    BadEnvelope,
    BadPlaintext,
    BadSignature,
    Batch,
    BatchStatus,
    DecryptionFailed,
    EnvelopeHeader,
    KeyDestroyed,
    KeyManifest,
    OpenedEnvelope,
    PullPage,
    Receipt,
    SealedEnvelope,
    Suite,
    SuiteNotAllowed,
    TooLarge,
    TooManyOperations,
    UnknownKey,
    UnsupportedVersion,
    WrongDeployment,
    decode_batch,
    decode_message,
    envelope,
    open_envelope,
    parse_envelope,
    seal,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .envelopes import (
    DEPLOYMENT,
    Device,
    KeyRing,
    batch_for,
    frame,
    push_header,
    regions,
    transport_key,
)

DEVICE = Device(uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057"))
NOW = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
TRANSPORT = {suite: transport_key(suite.key_kind, f"transport/{suite.name}") for suite in Suite}
RING = KeyRing()
RING.add_device(DEVICE)
for _pair in TRANSPORT.values():
    RING.add_transport(_pair)
BATCH = batch_for(DEVICE, n_ops=3)


def sealed(suite: Suite = DEFAULT_SUITE, batch: Batch = BATCH, **header) -> bytes:
    pair = TRANSPORT[suite]
    return seal(
        batch.model_dump_json().encode(),
        push_header(DEVICE, batch, pair.kid).model_copy(update=header),
        recipient_key=pair.public_key(),
        signing_key=DEVICE.key,
        suite=suite,
    )


def opened(data: bytes, **kw) -> OpenedEnvelope:
    return open_envelope(data, keys=RING, deployment_id=DEPLOYMENT, **kw)


def forged(
    header_changes: dict | None = None, body: bytes | None = None, suite: int = 1, **kw
) -> bytes:
    """An envelope built with the spec's layout by a sender holding the device key."""
    plaintext = BATCH.model_dump_json().encode()
    body = zlib.compress(plaintext) if body is None else body
    pair = TRANSPORT[Suite(suite)]
    header = push_header(DEVICE, BATCH, pair.kid).model_dump(mode="json", by_alias=True)
    header |= {"len": len(plaintext)} | (header_changes or {})
    return frame(header=header, body=body, recipient=pair, signer=DEVICE.key, suite=suite, **kw)


# ------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suite", list(Suite), ids=lambda s: s.name)
def test_every_suite_round_trips(suite: Suite) -> None:
    data = sealed(suite)
    envelope = opened(data, typ="push")
    assert envelope.suite is suite
    assert envelope.header.batch == BATCH.batch_id
    assert decode_batch(envelope) == BATCH
    assert data[:4] == b"CSYN"
    assert data[4] == 1
    assert data[5] == suite.value


def test_the_step_by_step_api_matches_the_one_call() -> None:
    data = sealed()
    parsed = parse_envelope(data, deployment_id=DEPLOYMENT)
    assert isinstance(parsed, SealedEnvelope)
    parsed.verify(DEVICE.key.public_key())
    assert parsed.decrypt(TRANSPORT[DEFAULT_SUITE].private_key()) == opened(data).plaintext


def test_the_layout_is_the_one_the_spec_describes() -> None:
    data = sealed()
    parts = regions(data)
    header = push_header(
        DEVICE, BATCH, TRANSPORT[DEFAULT_SUITE].kid, len=len(BATCH.model_dump_json())
    )
    assert (
        data[parts["header"].start : parts["header"].stop]
        == header.model_dump_json(by_alias=True).encode()
    )
    assert len(data[parts["signature"].start :]) == 64
    # And an envelope framed independently from the spec opens: both sides agree on it.
    for suite in Suite:
        assert decode_batch(opened(forged(suite=int(suite)))) == BATCH


def test_uncompressed_and_empty_bodies() -> None:
    pair = TRANSPORT[DEFAULT_SUITE]
    for plaintext in (b"", b"raw bytes"):
        for zip_ in ("none", "zlib"):
            header = push_header(DEVICE, BATCH, pair.kid, zip=zip_)
            data = seal(plaintext, header, recipient_key=pair.public_key(), signing_key=DEVICE.key)
            assert opened(data).plaintext == plaintext


def test_header_defaults_and_aliases() -> None:
    header = push_header(DEVICE, BATCH, "k")
    assert (header.len, header.zip, header.schema_version) == (0, "zlib", 1)
    assert json.loads(header.model_dump_json(by_alias=True))["schema"] == 1
    with pytest.raises(ValueError, match="lowercase hyphenated"):
        push_header(DEVICE, BATCH, "k", batch=str(BATCH.batch_id).upper())


# ------------------------------------------------------------------------- sealing limits


def test_seal_refuses_a_key_of_the_wrong_kind() -> None:
    with pytest.raises(UnknownKey):
        seal(
            b"x",
            push_header(DEVICE, BATCH, "k"),
            recipient_key=TRANSPORT[Suite.X25519_CHACHA20POLY1305].public_key(),
            signing_key=DEVICE.key,
            suite=Suite.MLKEM768X25519_CHACHA20POLY1305,
        )


def test_seal_refuses_what_no_receiver_would_open() -> None:
    pair = TRANSPORT[DEFAULT_SUITE]
    with pytest.raises(TooLarge):
        seal(
            bytes(HARD_MAX_PLAINTEXT_BYTES + 1),
            push_header(DEVICE, BATCH, pair.kid),
            recipient_key=pair.public_key(),
            signing_key=DEVICE.key,
        )
    noise = os.urandom(8 * 1024 * 1024)
    with pytest.raises(TooLarge):
        seal(
            noise,
            push_header(DEVICE, BATCH, pair.kid, zip="none"),
            recipient_key=pair.public_key(),
            signing_key=DEVICE.key,
        )


# ------------------------------------------------------------------------- compression


def json_like(size: int) -> bytes:
    """Registration-like JSON: repetitive keys, random names and numbers, as a batch compresses."""
    rng = random.Random(size)
    names = ["Zahra", "Fatima", "Mohammad", "Ahmad", "Gul", "Stanekzai", "Popal", "Safi"]
    records = []
    while sum(map(len, records)) < size:
        record = {"given_name": rng.choice(names), "phone": f"+937{rng.randrange(10**8):08}"}
        records.append(json.dumps(record | {"id": str(uuid.UUID(int=rng.getrandbits(128)))}))
    return ",".join(records).encode()[:size]


LARGE = {
    "json": json_like(1024 * 1024),
    "random": random.Random(1).randbytes(1024 * 1024),
    # Three pieces, the last shorter than the others.
    "odd size": json_like(3 * 128 * 1024 + 12_346),
}


@pytest.fixture
def four_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the parallel path whatever the machine's core count (CI may have one core)."""
    monkeypatch.setattr(envelope, "_WORKERS", 4)


def header_for(plaintext: bytes) -> EnvelopeHeader:
    return push_header(DEVICE, BATCH, "k", len=len(plaintext))


@pytest.mark.usefixtures("four_workers")
@pytest.mark.parametrize("name", list(LARGE))
def test_large_plaintexts_round_trip(name: str) -> None:
    plaintext = LARGE[name]
    pair = TRANSPORT[DEFAULT_SUITE]
    header = push_header(DEVICE, BATCH, pair.kid)
    data = seal(plaintext, header, recipient_key=pair.public_key(), signing_key=DEVICE.key)
    assert opened(data).plaintext == plaintext


@pytest.mark.usefixtures("four_workers")
@pytest.mark.parametrize("level", [-1, 0, 1, 6, 9])
@pytest.mark.parametrize("name", list(LARGE))
def test_pieces_make_one_standard_zlib_stream(name: str, level: int) -> None:
    plaintext = LARGE[name]
    body = envelope._compress(plaintext, level)
    assert body != zlib.compress(plaintext, level)  # the parallel path was taken
    assert body[:2] == zlib.compress(b"", level)[:2]
    assert zlib.decompress(body) == plaintext
    assert envelope._decompress(body, header_for(plaintext)) == plaintext


@pytest.mark.usefixtures("four_workers")
def test_pieces_keep_the_bounded_inflation_checks() -> None:
    plaintext = LARGE["json"]
    body = envelope._compress(plaintext, 1)
    shorter = push_header(DEVICE, BATCH, "k", len=len(plaintext) - 1)
    with pytest.raises(TooLarge):
        envelope._decompress(body, shorter)
    longer = push_header(DEVICE, BATCH, "k", len=len(plaintext) + 1)
    with pytest.raises(BadPlaintext):
        envelope._decompress(body, longer)
    for damaged in (body[:-4], body[: len(body) // 2], body + b"junk"):
        with pytest.raises(BadPlaintext):
            envelope._decompress(damaged, header_for(plaintext))
    with pytest.raises(zlib.error):
        envelope._compress(plaintext, 10)  # a bad level fails as zlib.compress fails


@pytest.mark.usefixtures("four_workers")
def test_small_plaintexts_are_compressed_in_one_call() -> None:
    plaintext = LARGE["json"][: 256 * 1024 - 1]
    assert envelope._compress(plaintext, 1) == zlib.compress(plaintext, 1)


def test_one_core_compresses_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "_WORKERS", 1)
    plaintext = LARGE["json"]
    assert envelope._compress(plaintext, 1) == zlib.compress(plaintext, 1)


@pytest.mark.usefixtures("four_workers")
def test_concurrent_sealers_share_the_pool() -> None:
    with ThreadPoolExecutor(4) as callers:
        bodies = list(callers.map(envelope._compress, LARGE.values(), [1] * len(LARGE)))
    assert [zlib.decompress(body) for body in bodies] == list(LARGE.values())


@pytest.mark.usefixtures("four_workers")
def test_a_forked_child_makes_its_own_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    inherited = ThreadPoolExecutor(1)
    inherited.shutdown()  # like a parent's pool in a child: nothing would ever run there
    monkeypatch.setattr(envelope, "_pool", (-1, inherited))
    plaintext = LARGE["json"]
    assert zlib.decompress(envelope._compress(plaintext, 1)) == plaintext
    assert envelope._pool is not None
    assert envelope._pool[0] == os.getpid()


# ------------------------------------------------------------------------- parse checks


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def parse_error(data: bytes, **kw) -> type[Exception]:
    with pytest.raises(Exception) as caught:
        parse_envelope(data, deployment_id=kw.pop("deployment_id", DEPLOYMENT), **kw)
    return type(caught.value)


def test_size_and_framing_checks() -> None:
    data = sealed()
    assert parse_error(data, max_bytes=len(data) - 1) is TooLarge
    assert (
        parse_error(data + bytes(8 * 1024 * 1024)) is TooLarge
    )  # above the hard limit whatever the setting
    assert parse_error(data[:77]) is BadEnvelope
    assert parse_error(b"CSYX" + data[4:]) is BadEnvelope
    assert parse_error(patched(data, 4, b"\x02")) is UnsupportedVersion
    assert parse_error(patched(data, 4, b"\x00")) is UnsupportedVersion
    for suite_id in (0, 4, 255):
        assert parse_error(patched(data, 5, bytes([suite_id]))) is SuiteNotAllowed
    assert (
        parse_error(data, allowed_suites={Suite.MLKEM768X25519_CHACHA20POLY1305}) is SuiteNotAllowed
    )
    for header_len in (0, 1, 4097, 0xFFFF, len(data)):
        assert parse_error(patched(data, 6, struct.pack(">H", header_len))) is BadEnvelope
    assert parse_error(data + b"\x00") is BadEnvelope
    assert parse_error(data[:-1]) is BadEnvelope


@pytest.mark.parametrize(
    "header",
    [
        b"not json",
        b"[]",
        b'{"typ":"push"}',
        b"\xff\xfe",
        json.dumps({"typ": "push", "typ ": 1}).encode(),
    ],
)
def test_malformed_headers(header: bytes) -> None:
    assert (
        parse_error(
            frame(header=header, body=b"", recipient=TRANSPORT[DEFAULT_SUITE], signer=DEVICE.key)
        )
        is BadEnvelope
    )


@pytest.mark.parametrize(
    "change",
    [
        {"seq": "1"},  # integers are JSON integers
        {"seq": 1.0},
        {"seq": True},
        {"len": -1},
        {"batch": "0" * 32},  # no hyphens
        {"typ": "cmd"},
        {"zip": "gzip"},
        {"aud": ""},
        {"extra": 1},
        {"schema": 0},
        {"schema_version": 1},  # the Python name, not the wire name
    ],
)
def test_headers_are_parsed_strictly(change: dict) -> None:
    assert parse_error(forged(change)) is BadEnvelope


def test_a_header_must_use_the_wire_names() -> None:
    header = json.loads(regions_header(forged()))
    header["schema_version"] = header.pop("schema")
    data = frame(header=header, body=b"", recipient=TRANSPORT[DEFAULT_SUITE], signer=DEVICE.key)
    assert parse_error(data) is BadEnvelope


def regions_header(data: bytes) -> bytes:
    parts = regions(data)
    return data[parts["header"].start : parts["header"].stop]


def test_a_header_with_a_repeated_key_is_refused() -> None:
    good = forged()
    parts = regions(good)
    header = good[parts["header"].start : parts["header"].stop]
    repeated = header[:-1] + b',"seq":' + str(BATCH.seq).encode() + b"}"
    data = frame(header=repeated, body=b"", recipient=TRANSPORT[DEFAULT_SUITE], signer=DEVICE.key)
    assert parse_error(data) is BadEnvelope


def test_type_deployment_and_declared_length_checks() -> None:
    data = sealed()
    assert parse_error(data, typ="receipt") is BadEnvelope
    assert parse_envelope(data, deployment_id=DEPLOYMENT, typ="push").header.typ == "push"
    assert parse_error(data, deployment_id="other") is WrongDeployment
    assert parse_error(data, max_plaintext=10) is TooLarge
    assert (
        parse_error(forged({"len": HARD_MAX_PLAINTEXT_BYTES + 1})) is BadEnvelope
    )  # out of the field's range


# ------------------------------------------------------------------------- keys, signature, body


def open_error(data: bytes, keys: KeyRing = RING) -> type[Exception]:
    with pytest.raises(Exception) as caught:
        open_envelope(data, keys=keys, deployment_id=DEPLOYMENT)
    return type(caught.value)


def test_key_checks() -> None:
    data = sealed()
    stranger = Device(DEVICE.id, seed_label="clone")  # same id, another key: a forger
    assert open_error(sealed(batch=BATCH, skid=stranger.kid)) is UnknownKey
    assert open_error(sealed(rkid="0123456789abcdef")) is UnknownKey
    destroyed = KeyRing(RING.senders, RING.recipients, {TRANSPORT[DEFAULT_SUITE].kid})
    assert open_error(data, destroyed) is KeyDestroyed
    assert open_error(patched(data, len(data) - 64, bytes(64))) is BadSignature
    parsed = parse_envelope(data, deployment_id=DEPLOYMENT)
    with pytest.raises(UnknownKey):
        parsed.decrypt(TRANSPORT[Suite.MLKEM768X25519_CHACHA20POLY1305].private_key())
    with pytest.raises(DecryptionFailed):
        parsed.decrypt(transport_key("x25519", "someone else").private_key())


def test_body_checks() -> None:
    plaintext = BATCH.model_dump_json().encode()
    compressed = zlib.compress(plaintext)
    bomb = zlib.compress(bytes(50 * 1024 * 1024), 9)
    cases = {
        "not zlib": (forged(body=b"\x00" * 40), BadPlaintext),
        "truncated zlib": (forged(body=compressed[:-8]), BadPlaintext),
        "trailing data": (forged(body=compressed + b"junk"), BadPlaintext),
        "shorter than declared": (forged({"len": len(plaintext) + 1}), BadPlaintext),
        "longer than declared": (forged({"len": len(plaintext) - 1}), TooLarge),
        "uncompressed, wrong length": (
            forged({"zip": "none"}, body=plaintext + b" "),
            BadPlaintext,
        ),
        "decompression bomb": (forged({"len": 1000}, body=bomb), TooLarge),
    }
    for name, (data, error) in cases.items():
        assert open_error(data) is error, name
    assert opened(forged({"zip": "none"}, body=plaintext)).plaintext == plaintext


def test_a_bomb_that_declares_its_size_is_refused_before_decryption() -> None:
    data = forged({"len": 50 * 1024 * 1024}, body=zlib.compress(bytes(50 * 1024 * 1024), 9))
    assert parse_error(data) is BadEnvelope  # above the hard plaintext limit: out of range
    assert (
        parse_error(forged({"len": 20 * 1024 * 1024}, body=b""), max_plaintext=1024 * 1024)
        is TooLarge
    )


# ------------------------------------------------------------------------- messages


def envelope_of(plaintext: bytes, typ: str = "push", **header) -> OpenedEnvelope:
    return OpenedEnvelope(
        DEFAULT_SUITE, push_header(DEVICE, BATCH, "k", typ=typ, **header), plaintext
    )


def batch_json(**changes) -> bytes:
    return json.dumps(BATCH.model_dump(mode="json") | changes).encode()


def decode_error(envelope: OpenedEnvelope, **kw) -> type[Exception]:
    with pytest.raises(Exception) as caught:
        decode_batch(envelope, **kw)
    return type(caught.value)


def test_decode_batch_checks_the_batch_against_its_header() -> None:
    assert decode_batch(envelope_of(batch_json())) == BATCH
    assert decode_error(envelope_of(batch_json(), typ="pull")) is BadEnvelope
    assert decode_error(envelope_of(batch_json(), schema=2)) is UnsupportedVersion
    assert decode_error(envelope_of(b"\xff not json")) is BadPlaintext
    assert decode_error(envelope_of(b'{"ops": [{"x": NaN}]}')) is BadPlaintext
    assert decode_error(envelope_of(b"[1, 2]")) is BadPlaintext
    assert decode_error(envelope_of(batch_json(seq="x"))) is BadPlaintext
    assert decode_error(envelope_of(batch_json(seq=2))) is BadPlaintext
    assert decode_error(envelope_of(batch_json(batch_id=str(uuid.uuid4())))) is BadPlaintext
    assert decode_error(envelope_of(batch_json(device_id=str(uuid.uuid4())))) is BadPlaintext
    assert (
        decode_error(envelope_of(batch_json(schema_version=1)), max_operations=2)
        is TooManyOperations
    )
    op = BATCH.ops[0]
    assert (
        decode_error(envelope_of(batch_json(ops=[op] * (HARD_MAX_OPERATIONS + 1))))
        is TooManyOperations
    )


def test_newer_protocols_and_unknown_schemas_are_refused_as_such() -> None:
    assert (
        decode_error(envelope_of(batch_json(protocol=PROTOCOL_VERSION + 1))) is UnsupportedVersion
    )
    # A newer protocol with a new field: still "upgrade", not "bad body".
    assert (
        decode_error(envelope_of(batch_json(protocol=PROTOCOL_VERSION + 1, novelty=1)))
        is UnsupportedVersion
    )
    assert decode_error(envelope_of(batch_json(schema_version=2))) is UnsupportedVersion
    # Header and body agree on a schema this receiver supports, but differ from each other.
    mismatch = OpenedEnvelope(
        DEFAULT_SUITE, push_header(DEVICE, BATCH, "k"), batch_json(schema_version=1)
    )
    assert decode_batch(mismatch) == BATCH


def test_decode_message_for_receipts_pull_pages_and_manifests() -> None:
    receipt = Receipt(
        batch_id=BATCH.batch_id,
        device_id=DEVICE.id,
        seq=1,
        status=BatchStatus.APPLIED,
        next_seq=2,
        server_hlc=BATCH.hlc,
        received_at=NOW,
    )
    envelope = envelope_of(receipt.model_dump_json().encode(), typ="receipt")
    assert decode_message(envelope, Receipt) == receipt
    page = PullPage(
        camp_id="torkham-1", cursor=0, next_cursor=5, has_more=False, server_hlc=BATCH.hlc
    )
    assert (
        decode_message(envelope_of(page.model_dump_json().encode(), typ="pull"), PullPage) == page
    )
    with pytest.raises(BadPlaintext):
        decode_message(envelope_of(page.model_dump_json().encode(), typ="pull"), Receipt)
    newer = json.loads(page.model_dump_json()) | {"protocol": 2}
    with pytest.raises(UnsupportedVersion):
        decode_message(envelope_of(json.dumps(newer).encode(), typ="pull"), PullPage)
    newer_with_field = newer | {"novelty": True}
    with pytest.raises(UnsupportedVersion):
        decode_message(envelope_of(json.dumps(newer_with_field).encode(), typ="pull"), PullPage)
    signing_key = {"kid": "k", "suite": "ed25519", "public_key": "AA", "not_before": NOW}
    manifest = KeyManifest(
        deployment_id="d", issued_at=NOW, signing_key=signing_key, transport_keys=[]
    )
    assert decode_message(envelope_of(manifest.model_dump_json().encode()), KeyManifest) == manifest


def test_errors_carry_their_code_and_status() -> None:
    expected = {
        BadEnvelope: ("bad_envelope", 400),
        TooLarge: ("envelope_too_large", 413),
        UnsupportedVersion: ("unsupported_version", 400),
        SuiteNotAllowed: ("suite_not_allowed", 400),
        WrongDeployment: ("wrong_deployment", 400),
        UnknownKey: ("unknown_key", 400),
        KeyDestroyed: ("key_destroyed", 410),
        BadSignature: ("bad_signature", 400),
        DecryptionFailed: ("decryption_failed", 400),
        BadPlaintext: ("bad_plaintext", 400),
        TooManyOperations: ("too_many_operations", 413),
    }
    for error, (code, status) in expected.items():
        assert (error.code, error("x").status) == (code, status)
    assert ALL_SUITES == set(Suite)
    assert DEFAULT_SUITE is Suite.X25519_CHACHA20POLY1305


def test_suite_ids_and_key_kinds_are_fixed() -> None:
    assert [(s.name, s.value, s.key_kind.value) for s in Suite] == [
        ("X25519_CHACHA20POLY1305", 1, "x25519"),
        ("X25519_AES256GCM", 2, "x25519"),
        ("MLKEM768X25519_CHACHA20POLY1305", 3, "mlkem768x25519"),
    ]
    assert Ed25519PrivateKey  # the signature algorithm of every sender
