"""Enrolment codes, enrolment, the key manifest, the device list, revocation, device tokens."""

from __future__ import annotations

import datetime as dt
import stat
import uuid

from campsync_sync import (
    EnrollmentInvite,
    KeyManifest,
    SignedManifest,
    b64decode,
    b64encode,
    enrollment_proof_message,
    fingerprint,
    load_signing_public,
    signing_public_bytes,
    verify_statement,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import Engine, select, update
from sqlmodel import Session

from api.audit.models import AuditLog
from api.devices.models import Device, EnrollmentCode
from api.security import hash_token
from tests.factories import bearer, make_camp, make_code, make_tablet, make_user
from tests.synckit import Tablet


def _actions(db: Engine) -> list[str]:
    with Session(db) as session:
        return list(session.execute(select(AuditLog.action).order_by(AuditLog.id)).scalars())


def test_code_is_single_use_hashed_and_carries_a_pinnable_invite(client, db: Engine) -> None:
    camp = make_camp(db)
    created = make_code(client, db, camp, ttl_minutes=30)
    invite = EnrollmentInvite.model_validate_json(created["qr_payload"])
    assert invite.code == created["code"]
    assert invite.server_url == "http://testserver"
    expires = dt.datetime.fromisoformat(created["expires_at"])
    assert dt.timedelta(minutes=29) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=30)
    with Session(db) as session:
        row = session.execute(select(EnrollmentCode)).scalar_one()
    assert row.code_hash == hash_token(created["code"])
    assert created["code"] not in row.code_hash

    tablet = Tablet(client)
    enrolled = tablet.enroll(created["code"], fingerprint_pin=invite.server_key_fingerprint)
    assert enrolled.camp_id == camp
    assert enrolled.next_seq == 1
    assert enrolled.deployment_id == invite.deployment_id
    again = Tablet(client)
    response = _enroll_raw(client, again, created["code"], invite.deployment_id)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "enrollment_code_invalid"
    assert "device.enroll" in _actions(db)
    assert "device.enrollment_code" in _actions(db)


def _enroll_raw(client, tablet: Tablet, code: str, deployment: str, *, proof_key=None):  # type: ignore[no-untyped-def]
    pub = signing_public_bytes(tablet.signing)
    xpub = tablet.exchange.public_key().public_bytes_raw()
    signer = proof_key or tablet.signing
    proof = signer.sign(enrollment_proof_message(code, deployment, pub, xpub))
    return client.post(
        "/v1/devices/enroll",
        json={
            "code": code,
            "signing_key": b64encode(pub),
            "exchange_key": b64encode(xpub),
            "proof": b64encode(proof),
        },
    )


def _deployment(client) -> str:  # type: ignore[no-untyped-def]
    signed = SignedManifest.model_validate(client.get("/v1/keys").json())
    return KeyManifest.model_validate_json(signed.payload).deployment_id


def test_expired_unknown_and_badly_proven_enrolments_are_refused(client, db: Engine) -> None:
    camp = make_camp(db)
    deployment = _deployment(client)
    code = make_code(client, db, camp)["code"]
    bad_proof = _enroll_raw(
        client, Tablet(client), code, deployment, proof_key=Ed25519PrivateKey.generate()
    )
    assert bad_proof.status_code == 400
    assert bad_proof.json()["error"]["code"] == "proof_invalid"
    # A bad proof does not burn the code.
    with Session(db) as session, session.begin():
        session.execute(
            update(EnrollmentCode).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(1))
        )
    expired = _enroll_raw(client, Tablet(client), code, deployment)
    unknown = _enroll_raw(client, Tablet(client), "ABCD-EFGH-JKMN-PQRS", deployment)
    for response in (expired, unknown):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "enrollment_code_invalid"
    garbage = client.post(
        "/v1/devices/enroll",
        json={"code": code, "signing_key": "AAAA", "exchange_key": "AAAA", "proof": "AAAA"},
    )
    assert garbage.status_code == 422
    with Session(db) as session:
        assert session.execute(select(Device)).first() is None


def test_the_same_tablet_enrolling_again_gets_the_same_answer(client, db: Engine) -> None:
    """A tablet whose enrolment answer was lost retries; nobody else can use the code."""
    camp = make_camp(db)
    deployment = _deployment(client)
    code = make_code(client, db, camp)["code"]
    tablet = Tablet(client)
    first = _enroll_raw(client, tablet, code, deployment)
    again = _enroll_raw(client, tablet, code, deployment)
    assert first.status_code == again.status_code == 201
    assert again.json()["device_id"] == first.json()["device_id"]
    assert again.json()["camp_id"] == camp
    assert again.json()["next_seq"] == 1
    # Another tablet, or the same public keys with a proof it cannot make: one answer.
    stranger = _enroll_raw(client, Tablet(client), code, deployment)
    forged = _enroll_raw(client, tablet, code, deployment, proof_key=Ed25519PrivateKey.generate())
    for response in (stranger, forged):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "enrollment_code_invalid"
    with Session(db) as session:
        assert len(session.execute(select(Device)).all()) == 1
    assert _actions(db).count("device.enroll") == 1
    assert _actions(db).count("device.enroll_repeated") == 1
    device_id = first.json()["device_id"]
    admin = bearer(make_user(db, "admin"))
    assert client.post(f"/v1/devices/{device_id}/revoke", headers=admin).status_code == 200
    after = _enroll_raw(client, tablet, code, deployment)
    assert after.status_code == 400
    assert after.json()["error"]["code"] == "enrollment_code_invalid"


def test_manifest_is_signed_and_keys_are_files_only_the_owner_reads(client, settings) -> None:  # type: ignore[no-untyped-def]
    signed = SignedManifest.model_validate(client.get("/v1/keys").json())
    manifest = KeyManifest.model_validate_json(signed.payload)
    key = load_signing_public(b64decode(manifest.signing_key.public_key))
    verify_statement(key, "manifest", signed.payload.encode(), signed.signature)
    assert {k.suite for k in manifest.transport_keys} == {"x25519", "mlkem768x25519"}
    assert all(k.status == "active" for k in manifest.transport_keys)
    files = list((settings.data_dir / "keys").iterdir())
    assert len(files) == 3
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((settings.data_dir / "keys").stat().st_mode) == 0o700
    # The deployment id and keys persist: a second app over the same database agrees.
    assert client.get("/v1/keys").json()["payload"].count(manifest.deployment_id) == 1
    assert fingerprint(signing_public_bytes(key)) == fingerprint(
        b64decode(manifest.signing_key.public_key)
    )


def test_device_list_is_scoped_and_hides_keys_from_integrators(client, db: Engine) -> None:
    camp, other = make_camp(db), make_camp(db)
    tablet = make_tablet(client, db, camp)
    make_tablet(client, db, other)
    tablet.push([tablet.household()], backlog=7)
    coordinator = make_user(db, "coordinator", [camp])
    integrator = make_user(db, "integrator", [camp])
    admin = make_user(db, "admin")

    listed = client.get("/v1/devices", params={"camp": camp}, headers=bearer(coordinator))
    assert listed.status_code == 200
    [device] = listed.json()["items"]
    assert device["id"] == str(tablet.device_id)
    assert device["last_seq"] == 1
    assert device["backlog"] == 7
    assert device["last_sync_at"] is not None
    assert device["quarantined_batches"] == 0
    assert device["signing_key"] == b64encode(signing_public_bytes(tablet.signing))

    as_integrator = client.get("/v1/devices", params={"camp": camp}, headers=bearer(integrator))
    assert as_integrator.status_code == 200
    assert as_integrator.json()["items"][0]["signing_key"] is None
    assert as_integrator.json()["items"][0]["exchange_key"] is None

    foreign = client.get("/v1/devices", params={"camp": other}, headers=bearer(coordinator))
    assert foreign.status_code == 404
    unscoped = client.get("/v1/devices", headers=bearer(coordinator)).json()["items"]
    assert [d["id"] for d in unscoped] == [str(tablet.device_id)]
    assert len(client.get("/v1/devices", headers=bearer(admin)).json()["items"]) == 2


def test_revocation_is_scoped_audited_and_immediate(client, db: Engine) -> None:
    camp, other = make_camp(db), make_camp(db)
    tablet = make_tablet(client, db, camp)
    token = tablet.token()
    assert tablet.pull_raw().status_code == 200
    outsider = make_user(db, "coordinator", [other])
    integrator = make_user(db, "integrator", [camp])
    path = f"/v1/devices/{tablet.device_id}/revoke"
    assert client.post(path, headers=bearer(outsider)).status_code == 404
    assert client.post(path, headers=bearer(integrator)).status_code == 403
    assert (
        client.post(
            f"/v1/devices/{uuid.uuid4()}/revoke", headers=bearer(make_user(db, "admin"))
        ).status_code
        == 404
    )
    coordinator = make_user(db, "coordinator", [camp])
    revoked = client.post(path, headers=bearer(coordinator))
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert client.post(path, headers=bearer(coordinator)).status_code == 200
    assert _actions(db).count("device.revoke") == 1

    refused = client.get("/v1/sync/changes", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "device_revoked"
    tablet.verify_wipe(refused.json()["error"]["details"])
    challenge = client.post("/v1/sync/challenge", json={"device_id": str(tablet.device_id)})
    assert challenge.status_code == 403


def test_device_tokens_refuse_forgeries_and_other_devices(client, db: Engine) -> None:
    camp = make_camp(db)
    tablet, other = make_tablet(client, db, camp), make_tablet(client, db, camp)
    token = tablet.token()
    for bad in (
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        token.replace(tablet.device_id.hex, other.device_id.hex),
        "cdt1." + tablet.device_id.hex + ".9999999999.xxxxxxxxxxxxxxxxxxxxxx",
        "cdt1." + tablet.device_id.hex + ".1.xxxx",
        "not-a-token",
    ):
        response = client.get("/v1/sync/changes", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401, bad
        assert response.json()["error"]["code"] == "unauthenticated"
    # A challenge signed by another device's key is refused.
    text = client.post("/v1/sync/challenge", json={"device_id": str(tablet.device_id)}).json()[
        "challenge"
    ]
    from campsync_sync import sign_statement

    forged = sign_statement(
        other.signing,
        "device-token",
        f"{tablet.deployment_id}\0{tablet.device_id}\0{text}".encode(),
    )
    response = client.post(
        "/v1/sync/token",
        json={"device_id": str(tablet.device_id), "challenge": text, "signature": forged},
    )
    assert response.status_code == 401
    unknown = client.post("/v1/sync/challenge", json={"device_id": str(uuid.uuid4())})
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "device_unknown"


def test_exchange_key_must_be_x25519(client, db: Engine) -> None:
    camp = make_camp(db)
    code = make_code(client, db, camp)["code"]
    signing = Ed25519PrivateKey.generate()
    pub = signing_public_bytes(signing)
    xpub = X25519PrivateKey.generate().public_key().public_bytes_raw()
    deployment = _deployment(client)
    response = client.post(
        "/v1/devices/enroll",
        json={
            "code": code,
            "signing_key": b64encode(pub),
            "exchange_key": b64encode(xpub[:31]),
            "proof": b64encode(signing.sign(enrollment_proof_message(code, deployment, pub, xpub))),
        },
    )
    assert response.status_code == 422


def test_token_failures_back_off_but_the_right_signature_still_gets_through(
    client, db: Engine
) -> None:
    tablet = make_tablet(client, db)
    text = client.post("/v1/sync/challenge", json={"device_id": str(tablet.device_id)}).json()[
        "challenge"
    ]
    body = {"device_id": str(tablet.device_id), "challenge": text, "signature": "AAAA"}
    statuses = [client.post("/v1/sync/token", json=body).status_code for _ in range(20)]
    assert statuses == [401] * 11 + [429] * 9
    limited = client.post("/v1/sync/token", json=body)
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 0 < int(limited.headers["retry-after"]) <= 900
    # Anyone may name a device id; only its key can sign, so the tablet is never locked out.
    assert tablet.token()
    assert make_tablet(client, db, tablet.camp_id).token()
