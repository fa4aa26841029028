"""X2: tampered envelopes, each rejected with the right typed error (the exact class).

The corpus is generated deterministically on every run: bit flips in every region of every
suite's envelope, truncations, extensions, splices of two envelopes, replayed headers with
another body, a device id swapped and re-signed with another device's key, suite downgrades,
decompression bombs, wrong deployments and oversize envelopes. Where a flip lands in the header,
an independent reading of the header (plain ``json`` and the rules of docs/protocol.md) decides
which check must fail first.
"""

from __future__ import annotations

import json
import random
import re
import struct
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from campsync_sync import (
    HARD_MAX_ENVELOPE_BYTES,
    HARD_MAX_PLAINTEXT_BYTES,
    BadEnvelope,
    BadPlaintext,
    BadSignature,
    DecryptionFailed,
    EnvelopeError,
    KeyDestroyed,
    Suite,
    SuiteNotAllowed,
    TooLarge,
    TransportKeyPair,
    UnknownKey,
    UnsupportedVersion,
    WrongDeployment,
    decode_batch,
    open_envelope,
    seal,
)
from hypothesis import given
from hypothesis import strategies as st

from .envelopes import (
    DEPLOYMENT,
    Device,
    KeyRing,
    batch_for,
    frame,
    push_header,
    regions,
    resign,
    transport_key,
)
from .strategies import QUICK

DEVICE = Device(uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057"))
OTHER = Device(uuid.UUID("01890a5d-ac96-774b-8ad1-5c0f3e2b9a41"))
TRANSPORT = {suite: transport_key(suite.key_kind, f"transport/{suite.name}") for suite in Suite}
DESTROYED = transport_key("x25519", "destroyed")
RING = KeyRing(destroyed={DESTROYED.kid})
for _device in (DEVICE, OTHER):
    RING.add_device(_device)
for _pair in (*TRANSPORT.values(), DESTROYED):
    RING.add_transport(_pair)
UUID_TEXT = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


@dataclass
class Case:
    kind: str
    data: bytes
    expected: type[EnvelopeError]
    options: dict = field(default_factory=dict)


def seal_batch(
    suite: Suite,
    seq: int = 1,
    device: Device = DEVICE,
    recipient: TransportKeyPair | None = None,
    **header,
) -> bytes:
    pair = recipient or TRANSPORT[suite]
    batch = batch_for(device, seq=seq)
    return seal(
        batch.model_dump_json().encode(),
        push_header(device, batch, pair.kid).model_copy(update=header),
        recipient_key=pair.public_key(),
        signing_key=device.key,
        suite=suite,
    )


def flip(data: bytes, index: int, bit: int) -> bytes:
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]


def _no_duplicates(pairs):
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


def header_verdict(raw: bytes) -> type[EnvelopeError]:
    """Which check a mutated header fails first, read independently of the package."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except ValueError:
        return BadEnvelope
    required = {"typ", "aud", "snd", "skid", "rkid", "batch", "seq"}
    if not isinstance(header, dict) or not required <= header.keys() <= required | {
        "schema",
        "len",
        "zip",
    }:
        return BadEnvelope

    def integer(value, low, high) -> bool:
        return type(value) is int and low <= value <= high

    valid = (
        header["typ"] in ("push", "pull", "receipt")
        and all(
            isinstance(header[k], str) and 1 <= len(header[k]) <= 64
            for k in ("aud", "snd", "skid", "rkid")
        )
        and isinstance(header["batch"], str)
        and UUID_TEXT.match(header["batch"]) is not None
        and integer(header["seq"], 0, 2**63 - 1)
        and integer(header.get("schema", 1), 1, 2**16 - 1)
        and integer(header.get("len", 0), 0, HARD_MAX_PLAINTEXT_BYTES)
        and header.get("zip", "zlib") in ("none", "zlib")
    )
    if not valid or header["typ"] != "push":
        return BadEnvelope
    if header["aud"] != DEPLOYMENT:
        return WrongDeployment
    if (header["snd"], header["skid"]) not in RING.senders:
        return UnknownKey  # the sender's key is looked up before the signature is checked
    return BadSignature


def bit_flips(suite: Suite, data: bytes, rng: random.Random) -> Iterator[Case]:
    parts = regions(data)
    for index in parts["magic"]:
        for bit in range(8):
            yield Case("flip magic", flip(data, index, bit), BadEnvelope)
    for bit in range(8):
        yield Case("flip version", flip(data, 4, bit), UnsupportedVersion)
        new_suite = data[5] ^ (1 << bit)
        expected = BadSignature if new_suite in Suite._value2member_map_ else SuiteNotAllowed
        yield Case("flip suite", flip(data, 5, bit), expected)
    for index in parts["header_length"]:
        for bit in range(8):
            yield Case("flip header length", flip(data, index, bit), BadEnvelope)
    header = parts["header"]
    for index in header:
        for bit in {index % 8, (index * 3 + 5) % 8}:
            mutated = flip(data, index, bit)
            yield Case("flip header", mutated, header_verdict(mutated[header.start : header.stop]))
    for index in parts["ct_length"]:
        for bit in range(8):
            yield Case("flip ciphertext length", flip(data, index, bit), BadEnvelope)
    for index in rng.sample(parts["ciphertext"], 48):
        yield Case("flip ciphertext", flip(data, index, rng.randrange(8)), BadSignature)
        # The sender itself (or a thief with its key) re-signs: the AEAD still refuses.
        yield Case(
            "flip ciphertext, re-signed",
            resign(flip(data, index, rng.randrange(8)), DEVICE.key),
            DecryptionFailed,
        )
    for index in parts["signature"]:
        for bit in (index % 8, (index + 4) % 8):
            yield Case("flip signature", flip(data, index, bit), BadSignature)


def with_header(data: bytes, header: dict) -> bytes:
    """The envelope with another header; the old signature is kept (and so now wrong)."""
    parts = regions(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    return data[:6] + struct.pack(">H", len(raw)) + raw + data[parts["header"].stop :]


def header_of(data: bytes) -> dict:
    parts = regions(data)
    return json.loads(data[parts["header"].start : parts["header"].stop])


def resigned_header_changes(suite: Suite) -> Iterator[Case]:
    """Header fields changed by someone holding the device key: bound into HPKE, so refused."""
    data = seal_batch(suite)
    original = header_of(data)
    for change in (
        {"seq": 2},
        {"seq": 0},
        {"batch": str(uuid.uuid4())},
        {"len": original["len"] + 1},
        {"schema": 2},
        {"zip": "none"},
    ):
        yield Case(
            "header changed, re-signed",
            resign(with_header(data, original | change), DEVICE.key),
            DecryptionFailed,
        )
    yield Case(
        "type changed, re-signed",
        resign(with_header(data, original | {"typ": "pull"}), DEVICE.key),
        BadEnvelope,
    )
    # Swap the device: another enrolled tablet claims the batch and signs it with its own key.
    swapped = with_header(data, original | {"snd": str(OTHER.id), "skid": OTHER.kid})
    yield Case(
        "device swapped, re-signed by the other device",
        resign(swapped, OTHER.key),
        DecryptionFailed,
    )
    yield Case("device swapped, not re-signed", swapped, BadSignature)
    claimed = with_header(data, original | {"snd": str(OTHER.id)})
    yield Case("device id swapped, key id kept", resign(claimed, OTHER.key), UnknownKey)


def downgrades() -> Iterator[Case]:
    strong = seal_batch(Suite.MLKEM768X25519_CHACHA20POLY1305)
    for weaker in (Suite.X25519_CHACHA20POLY1305, Suite.X25519_AES256GCM):
        down = strong[:5] + bytes([weaker]) + strong[6:]
        yield Case("suite downgrade", down, BadSignature)
        # Re-signed by the device: the key it names is a hybrid key, not of the weaker kind.
        yield Case("suite downgrade, re-signed", resign(down, DEVICE.key), UnknownKey)
        yield Case(
            "suite downgrade, PQ required",
            down,
            SuiteNotAllowed,
            {"allowed_suites": {Suite.MLKEM768X25519_CHACHA20POLY1305}},
        )
    chacha = seal_batch(Suite.X25519_CHACHA20POLY1305)
    to_aes = chacha[:5] + bytes([Suite.X25519_AES256GCM]) + chacha[6:]
    yield Case(
        "suite swapped, same key kind, re-signed", resign(to_aes, DEVICE.key), DecryptionFailed
    )
    yield Case(
        "suite not allowed", chacha, SuiteNotAllowed, {"allowed_suites": {Suite.X25519_AES256GCM}}
    )


def truncations_and_extensions(suite: Suite, data: bytes, step: int) -> Iterator[Case]:
    for length in range(0, len(data), step):
        yield Case("truncation", data[:length], BadEnvelope)
    for extra in (b"\x00", b"\x00" * 7, data[-64:], b"CSYN"):
        yield Case("extension", data + extra, BadEnvelope)


def splices(suite: Suite) -> Iterator[Case]:
    first, second = seal_batch(suite, seq=1), seal_batch(suite, seq=2)
    a, b = regions(first), regions(second)
    head_a, tail_b = first[: a["header"].stop], second[b["header"].stop :]
    yield Case("splice: header of one, body of another", head_a + tail_b, BadSignature)
    yield Case("splice: another envelope's signature", first[:-64] + second[-64:], BadSignature)
    # A replayed header over another body, re-signed by the sender: HPKE info differs.
    yield Case(
        "replayed header, another body, re-signed",
        resign(head_a + tail_b, DEVICE.key),
        DecryptionFailed,
    )
    other_suite = (
        Suite.MLKEM768X25519_CHACHA20POLY1305
        if suite is not Suite.MLKEM768X25519_CHACHA20POLY1305
        else Suite.X25519_AES256GCM
    )
    foreign = seal_batch(other_suite, seq=1)
    yield Case(
        "splice across suites", head_a + foreign[regions(foreign)["header"].stop :], BadSignature
    )
    yield Case("two envelopes back to back", first + second, BadEnvelope)


def key_and_deployment_cases() -> Iterator[Case]:
    suite = Suite.X25519_CHACHA20POLY1305
    yield Case("wrong deployment", seal_batch(suite, aud="another-deployment"), WrongDeployment)
    yield Case("unknown device", seal_batch(suite, device=Device(uuid.UUID(int=99))), UnknownKey)
    yield Case(
        "unknown transport key",
        seal_batch(suite, recipient=transport_key("x25519", "unknown")),
        UnknownKey,
    )
    yield Case("destroyed transport key", seal_batch(suite, recipient=DESTROYED), KeyDestroyed)
    stranger_key = transport_key("x25519", "stranger")
    data = seal_batch(suite, recipient=stranger_key)
    relabelled = json.dumps(
        header_of(data) | {"rkid": TRANSPORT[suite].kid}, separators=(",", ":")
    ).encode()
    yield Case(
        "sealed to another key, labelled as ours",
        frame(
            header=relabelled,
            body=zlib.compress(batch_for(DEVICE).model_dump_json().encode(), 1),
            recipient=stranger_key,
            signer=DEVICE.key,
        ),
        DecryptionFailed,
    )
    yield Case("wrong envelope type", seal_batch(suite, typ="receipt"), BadEnvelope)


def size_cases() -> Iterator[Case]:
    data = seal_batch(Suite.X25519_CHACHA20POLY1305)
    yield Case("over the receiver's limit", data, TooLarge, {"max_bytes": len(data) - 1})
    yield Case("over the hard limit", data + bytes(HARD_MAX_ENVELOPE_BYTES), TooLarge)
    yield Case(
        "declared plaintext over the receiver's limit", data, TooLarge, {"max_plaintext": 100}
    )
    plaintext = batch_for(DEVICE).model_dump_json().encode()
    header = push_header(
        DEVICE, batch_for(DEVICE), TRANSPORT[Suite.X25519_CHACHA20POLY1305].kid
    ).model_dump(mode="json", by_alias=True)
    for megabytes in (1, 8, 30):
        bomb = zlib.compress(bytes(megabytes * 1024 * 1024), 9)
        for declared in (0, len(plaintext), 64 * 1024):
            yield Case(
                f"decompression bomb of {megabytes} MiB",
                frame(
                    header=header | {"len": declared},
                    body=bomb,
                    recipient=TRANSPORT[Suite.X25519_CHACHA20POLY1305],
                    signer=DEVICE.key,
                ),
                TooLarge,
            )
    for version in range(256):
        if version != 1:
            yield Case(
                "unknown envelope version",
                data[:4] + bytes([version]) + data[5:],
                UnsupportedVersion,
            )
    for suite_id in range(256):
        if suite_id not in Suite._value2member_map_:
            yield Case("unknown suite", data[:5] + bytes([suite_id]) + data[6:], SuiteNotAllowed)
    yield Case(
        "garbage body",
        frame(
            header=header | {"len": 10},
            body=b"\x78\x9c garbage",
            recipient=TRANSPORT[Suite.X25519_CHACHA20POLY1305],
            signer=DEVICE.key,
        ),
        BadPlaintext,
    )


def corpus() -> list[Case]:
    rng = random.Random(20261126)
    cases: list[Case] = []
    for suite in Suite:
        data = seal_batch(suite)
        cases += bit_flips(suite, data, rng)
        cases += truncations_and_extensions(
            suite, data, step=1 if suite is Suite.X25519_CHACHA20POLY1305 else 7
        )
        cases += splices(suite)
        cases += resigned_header_changes(suite)
    cases += downgrades()
    cases += key_and_deployment_cases()
    cases += size_cases()
    return cases


def rejection(case: Case) -> type[Exception] | None:
    try:
        opened = open_envelope(
            case.data, keys=RING, deployment_id=DEPLOYMENT, typ="push", **case.options
        )
        decode_batch(opened)
    except Exception as exc:
        return type(exc)
    return None


def test_every_tampering_is_rejected_with_the_right_error() -> None:
    cases = corpus()
    kinds = Counter(case.kind.split(",")[0] for case in cases)
    assert len(cases) >= 1000, kinds
    wrong = [
        (c.kind, c.expected.__name__, getattr(rejection(c), "__name__", "accepted"))
        for c in cases
        if rejection(c) is not c.expected
    ]
    assert not wrong, f"{len(wrong)} of {len(cases)} tamperings: {Counter(wrong).most_common(10)}"
    # Every region and every kind of attack was exercised.
    assert {
        "flip magic",
        "flip version",
        "flip suite",
        "flip header length",
        "flip header",
        "flip ciphertext length",
        "flip ciphertext",
        "flip signature",
    } <= kinds.keys()
    expected_errors = {c.expected for c in cases}
    assert expected_errors == {
        BadEnvelope,
        UnsupportedVersion,
        SuiteNotAllowed,
        WrongDeployment,
        UnknownKey,
        KeyDestroyed,
        BadSignature,
        DecryptionFailed,
        BadPlaintext,
        TooLarge,
    }


def test_the_untampered_envelopes_open() -> None:
    for suite in Suite:
        assert decode_batch(
            open_envelope(seal_batch(suite), keys=RING, deployment_id=DEPLOYMENT, typ="push")
        ) == batch_for(DEVICE)


SAMPLE = seal_batch(Suite.X25519_CHACHA20POLY1305)


@QUICK
@given(
    st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 7)), min_size=1, max_size=6),
    st.integers(0, len(SAMPLE)),
)
def test_random_damage_only_ever_raises_envelope_errors(flips, cut) -> None:
    data = SAMPLE
    for index, bit in flips:
        data = flip(data, index, bit)
    for damaged in (data, data[:cut]):
        if damaged == SAMPLE:
            continue
        error = rejection(Case("random", damaged, EnvelopeError))
        assert error is not None
        assert issubclass(error, EnvelopeError), error
