"""Tampered, truncated and foreign envelopes; key rotation; limits. Each refusal writes 0 rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import struct
import time
import zlib

import pytest
from campsync_sync import (
    Batch,
    EnvelopeHeader,
    KeyKind,
    Suite,
    seal,
    uuid7,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlmodel import Session

from api.main import create_app
from api.sync import keys as server_keys
from api.sync.models import ServerKey
from tests.factories import make_camp, make_tablet
from tests.synccheck import table_counts
from tests.synckit import Tablet, signing_key_id

DOCUMENTED = {
    400: {
        "bad_envelope",
        "unsupported_version",
        "suite_not_allowed",
        "wrong_deployment",
        "unknown_key",
        "bad_signature",
        "decryption_failed",
        "bad_plaintext",
    },
    401: {"device_unknown"},
    409: {"seq_gap", "seq_reused"},
    413: {"envelope_too_large", "too_many_operations"},
    422: {"batch_mismatch"},
}


def _refused(response, code: str | None = None) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code in DOCUMENTED, response.text
    got = response.json()["error"]["code"]
    assert got in DOCUMENTED[response.status_code], got
    assert "Traceback" not in response.text
    assert "Canary" not in response.text
    if code is not None:
        assert got == code, response.text
    return got


def _header(data: bytes) -> tuple[int, int]:
    (length,) = struct.unpack_from(">H", data, 6)
    return 8, 8 + length


def test_a_corpus_of_broken_envelopes_is_refused_with_zero_rows_written(client, db: Engine) -> None:
    camp = make_camp(db)
    tablet, other = make_tablet(client, db, camp), make_tablet(client, db, camp)
    tablet.push([tablet.household()])  # seq 1 taken: the corpus below targets seq 2
    batch_id, good = tablet.seal_batch([tablet.household()], seq=2)
    _start, end = _header(good)
    kid, public = tablet.transport_key()
    assert tablet.device_id is not None
    assert tablet.deployment_id is not None

    def envelope(plaintext: bytes, **header_changes) -> bytes:  # type: ignore[no-untyped-def]
        fields = {
            "typ": "push",
            "aud": tablet.deployment_id,
            "snd": str(tablet.device_id),
            "skid": signing_key_id(tablet.signing),
            "rkid": kid,
            "batch": batch_id,
            "seq": 2,
            "len": 0,
        } | header_changes
        signer = header_changes.pop("signer", None) if "signer" in header_changes else None
        fields.pop("signer", None)
        return seal(
            plaintext,
            EnvelopeHeader(**fields),
            recipient_key=public,
            signing_key=signer or tablet.signing,
        )

    def batch_json(**changes) -> bytes:  # type: ignore[no-untyped-def]
        batch = Batch(
            batch_id=batch_id, device_id=tablet.device_id, seq=2, hlc=tablet.hlc(), ops=[]
        )
        return batch.model_copy(update=changes).model_dump_json().encode()

    corpus: dict[str, tuple[bytes, str]] = {
        "empty": (b"", "bad_envelope"),
        "magic": (b"XXXX" + good[4:], "bad_envelope"),
        "version": (good[:4] + b"\x09" + good[5:], "unsupported_version"),
        "suite": (good[:5] + b"\x63" + good[6:], "suite_not_allowed"),
        "suite downgrade": (good[:5] + bytes([Suite.X25519_AES256GCM]) + good[6:], "bad_signature"),
        "truncated": (good[:-1], "bad_envelope"),
        "truncated body": (good[: len(good) // 2], "bad_envelope"),
        "trailing": (good + b"\x00", "bad_envelope"),
        "signature": (good[:-1] + bytes([good[-1] ^ 1]), "bad_signature"),
        "ciphertext": (
            good[: end + 10] + bytes([good[end + 10] ^ 1]) + good[end + 11 :],
            "bad_signature",
        ),
        "foreign deployment": (envelope(batch_json(), aud="dep-elsewhere"), "wrong_deployment"),
        "other device's id, re-signed by it": (
            envelope(batch_json(), signer=other.signing),
            "bad_signature",
        ),
        "claims another device": (
            envelope(batch_json(), snd=str(other.device_id), skid=signing_key_id(other.signing)),
            "bad_signature",
        ),
        "unknown device": (envelope(batch_json(), snd=str(uuid7())), "device_unknown"),
        "unknown recipient key": (envelope(batch_json(), rkid="0000000000000000"), "unknown_key"),
        "not JSON": (envelope(b"\xff\xfenot json"), "bad_plaintext"),
        "not a batch": (envelope(b'{"ops": [], "protocol": 1}'), "bad_plaintext"),
        "batch of another device": (
            envelope(batch_json(device_id=other.device_id)),
            "bad_plaintext",
        ),
        "batch with another seq": (envelope(batch_json(seq=3)), "bad_plaintext"),
        "receipt type": (envelope(batch_json(), typ="receipt"), "bad_envelope"),
        "path differs": (envelope(batch_json(), batch=uuid7()), "bad_envelope"),
        "gap": (envelope(batch_json(), seq=9), "seq_gap"),
        "declared length lies": (_lying_length(envelope(batch_json())), "bad_signature"),
    }
    bomb = zlib.compress(b" " * 5_000_000)
    corpus["zip bomb"] = (_raw_envelope(tablet, batch_id, bomb, 1000), "envelope_too_large")
    before = table_counts(db)
    for name, (data, code) in corpus.items():
        started = time.perf_counter()
        response = tablet.put(batch_id, data)
        assert time.perf_counter() - started < 1, name
        got = _refused(response)
        assert got == code, f"{name}: {got} {response.text}"
    rng = random.Random(1234)
    for _ in range(1000):
        data = bytearray(good)
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)
        _refused(tablet.put(batch_id, bytes(data)))
    assert table_counts(db) == before
    assert tablet.put(batch_id, good).status_code == 200


def _lying_length(data: bytes) -> bytes:
    start, end = _header(data)
    header = data[start:end].replace(b'"len":', b'"len":1')
    return data[:6] + struct.pack(">H", len(header)) + header + data[end:]


def _raw_envelope(tablet: Tablet, batch_id, body: bytes, declared: int) -> bytes:  # type: ignore[no-untyped-def]
    """An envelope whose compressed body expands far beyond its declared length."""
    from campsync_sync.envelope import _CT_LEN, _PREFIX, INFO_LABEL, MAGIC, SIG_LABEL

    kid, public = tablet.transport_key()
    header = (
        EnvelopeHeader(
            typ="push",
            aud=tablet.deployment_id,
            snd=str(tablet.device_id),
            skid=signing_key_id(tablet.signing),
            rkid=kid,
            batch=batch_id,
            seq=2,
            len=declared,
        )
        .model_dump_json(by_alias=True)
        .encode()
    )
    prefix = _PREFIX.pack(MAGIC, 1, Suite.X25519_CHACHA20POLY1305, len(header)) + header
    ciphertext = Suite.X25519_CHACHA20POLY1305.hpke().encrypt(
        body, public, info=INFO_LABEL + prefix
    )
    signed = prefix + _CT_LEN.pack(len(ciphertext)) + ciphertext
    return signed + tablet.signing.sign(SIG_LABEL + signed)


def test_retired_keys_still_open_destroyed_keys_answer_410_hybrid_works(
    client, db: Engine, settings
) -> None:  # type: ignore[no-untyped-def]
    tablet = make_tablet(client, db)
    old_batch, old_data = tablet.seal_batch([tablet.household()])
    rotation = server_keys.rotate_keys(engine=db, settings=settings, actor="test")
    assert len(rotation.created) == 2
    assert len(rotation.retired) == 2
    client.app.state.keyring.refresh()
    tablet.refresh_manifest()
    assert tablet.manifest is not None
    statuses = {k.kid: k.status for k in tablet.manifest.transport_keys}
    assert {statuses[k] for k in rotation.retired} == {"retired"}
    assert tablet.put(old_batch, old_data).status_code == 200

    sealed_to_retired = tablet.seal_batch([tablet.household()], rkid=rotation.retired[0])
    with Session(db) as session, session.begin():
        session.execute(
            update(ServerKey)
            .where(ServerKey.kid.in_(rotation.retired))  # type: ignore[attr-defined]
            .values(destroy_after=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    again = server_keys.rotate_keys(engine=db, settings=settings, actor="test")
    assert set(again.destroyed) == set(rotation.retired)
    for kid in rotation.retired:
        assert not (settings.data_dir / "keys" / f"{kid}.key").exists()
    client.app.state.keyring.refresh()
    before = table_counts(db)
    gone = tablet.put(*_bad_kid(tablet, sealed_to_retired, rotation.retired[0]))
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "key_destroyed"
    assert table_counts(db) == before
    tablet.refresh_manifest()
    assert rotation.retired[0] not in {k.kid for k in tablet.manifest.transport_keys}
    # The tablet re-seals the same batch id and seq to a current key.
    batch_id, _ = sealed_to_retired
    resealed = tablet.seal_batch([tablet.household()], seq=2, batch_id=batch_id)
    assert tablet.put(*resealed).status_code == 200
    hybrid = tablet.push(
        [tablet.household()],
        kind=KeyKind.MLKEM768_X25519,
        suite=Suite.MLKEM768X25519_CHACHA20POLY1305,
    )
    assert hybrid.status == "applied"


def _bad_kid(tablet: Tablet, sealed, kid: str):  # type: ignore[no-untyped-def]
    return sealed


def test_limits_answer_their_4xx_quickly(db: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    limited = settings.model_copy(
        update={"max_envelope_bytes": 4096, "max_operations_per_batch": 3, "max_page_size": 50}
    )
    with TestClient(create_app(limited, engine=db)) as client:
        tablet = make_tablet(client, db)
        big = b"x" * 10_000
        started = time.perf_counter()
        response = tablet.put(uuid7(), big)
        assert time.perf_counter() - started < 0.1
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "envelope_too_large"
        many = tablet.seal_batch([tablet.household() for _ in range(4)])
        refused = tablet.put(*many)
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "too_many_operations"
        wrong_type = client.put(
            f"/v1/sync/batches/{uuid7()}", content=b"x", headers={"content-type": "text/plain"}
        )
        assert wrong_type.status_code == 415
        page = tablet.pull_raw(0, 51)
        assert page.status_code == 422
        assert tablet.pull_raw(0, 50).status_code == 200
        assert tablet.pull_raw(10**9, 50).json()["error"]["code"] == "cursor_invalid"


@pytest.mark.parametrize("typ", ["pull", "receipt"])
def test_server_envelopes_open_only_for_their_device(client, db: Engine, typ: str) -> None:
    camp = make_camp(db)
    tablet, other = make_tablet(client, db, camp), make_tablet(client, db, camp)
    if typ == "pull":
        data = tablet.pull_raw().content
    else:
        batch_id, sealed = tablet.seal_batch([tablet.household()])
        data = tablet.put(batch_id, sealed).content
    tablet.open(data, typ)
    other.exchange = X25519PrivateKey.generate()
    with pytest.raises(Exception, match="decrypt"):
        other.open(data, typ)


def test_a_push_beyond_capacity_is_told_when_to_come_back(client, db: Engine) -> None:  # type: ignore[no-untyped-def]
    from api.routes.sync import PushGate

    tablet = make_tablet(client, db)
    client.app.state.push_gate = PushGate(slots=0, patience=0.05)
    started = time.perf_counter()
    response = tablet.put(*tablet.seal_batch([tablet.household()]))
    assert time.perf_counter() - started < 1
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["retry-after"]) > 0


@pytest.mark.parametrize("merges", [1, 2])
def test_admitted_pushes_merge_a_few_at_a_time(merges: int) -> None:
    from api.routes.sync import PushGate

    gate = PushGate(merges=merges)
    running, most = 0, 0

    async def push() -> None:
        nonlocal running, most
        async with gate.slot(), gate.merging():
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01)
            running -= 1

    async def storm() -> None:
        await asyncio.gather(*(push() for _ in range(8)))

    asyncio.run(storm())
    assert most == merges


def test_the_app_merges_one_push_at_a_time_per_process_on_sqlite_only(client, db: Engine) -> None:  # type: ignore[no-untyped-def]
    from api.routes.sync import MERGES_AT_ONCE, SQLITE_MERGES_AT_ONCE

    expected = SQLITE_MERGES_AT_ONCE if db.dialect.name == "sqlite" else MERGES_AT_ONCE
    assert (SQLITE_MERGES_AT_ONCE, MERGES_AT_ONCE) == (1, 2)
    assert client.app.state.push_gate.merges == expected


def test_a_crowded_worker_sends_tablets_elsewhere_only_when_there_are_others(
    db: Engine, settings
) -> None:  # type: ignore[no-untyped-def]
    for workers in (1, 2):
        app = create_app(settings.model_copy(update={"workers": workers}), engine=db)
        with TestClient(app) as client:
            gate = client.app.state.push_gate
            assert gate.rebalance == (workers > 1)
            tablet = make_tablet(client, db)
            alone = tablet.put(*tablet.seal_batch([tablet.household()]))
            gate.admitted += 1  # another push of this worker waits for its turn
            crowded = tablet.put(*tablet.seal_batch([tablet.household()]))
            gate.admitted -= 1
        assert alone.status_code == crowded.status_code == 200
        assert "close" not in alone.headers.get("connection", "")
        # Only a worker with siblings closes: the tablet's next connection may reach one.
        assert ("close" in crowded.headers.get("connection", "")) == (workers > 1)


def test_keys_can_live_in_the_database(db: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    in_db = settings.model_copy(update={"key_store": "database"})
    with TestClient(create_app(in_db, engine=db)) as client:
        tablet = make_tablet(client, db)
        assert tablet.push([tablet.household()]).status == "applied"
    assert not (settings.data_dir / "keys").exists()
    with Session(db) as session:
        rows = session.execute(select(ServerKey)).scalars().all()
    assert len(rows) == 3
    assert all(row.private_key for row in rows)
