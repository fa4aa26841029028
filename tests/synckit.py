"""A tablet, as far as the server's tests need one, built on campsync_sync alone.

It generates device keys, enrols, builds operations, seals batches, opens receipts and pull
pages (checking the server's signature against the key pinned at enrolment) and gets device
tokens. It speaks through anything with httpx's ``get/post/put`` (a TestClient for in-process
tests, an ``httpx.Client`` for a live server). It is not the reference client: that one is
being written separately, and the server is tested against the contract, not against it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from campsync_sync import (
    DEFAULT_SUITE,
    HLC,
    Batch,
    Clock,
    EnrollmentInvite,
    EnrollmentRequest,
    EnrollmentResponse,
    EnvelopeHeader,
    FieldWrite,
    KeyKind,
    KeyManifest,
    PatchOp,
    PullPage,
    Receipt,
    ServiceOp,
    SetChange,
    SignedManifest,
    Suite,
    b64decode,
    b64encode,
    enrollment_proof_message,
    fingerprint,
    load_signing_public,
    load_transport_public,
    node_id_for,
    parse_envelope,
    seal,
    sign_statement,
    signing_public_bytes,
    uuid7,
    verify_statement,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

OCTETS = {"content-type": "application/octet-stream"}


class HTTP(Protocol):
    def get(self, url: str, **kw: Any) -> Any: ...
    def post(self, url: str, **kw: Any) -> Any: ...
    def put(self, url: str, **kw: Any) -> Any: ...


class _ServerKeys:
    """Opens envelopes from the server: its signing key (pinned) and our exchange key."""

    def __init__(self, tablet: Tablet) -> None:
        self.tablet = tablet

    def sender_key(self, header: EnvelopeHeader) -> Any:
        assert header.snd == "server"
        return load_signing_public(b64decode(self.tablet.manifest.signing_key.public_key))

    def recipient_key(self, header: EnvelopeHeader, suite: Suite) -> Any:
        return self.tablet.exchange


@dataclass
class Tablet:
    http: HTTP
    signing: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    exchange: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    operator: str = "worker-1"
    device_id: uuid.UUID | None = None
    camp_id: str | None = None
    deployment_id: str | None = None
    manifest: KeyManifest | None = None  # type: ignore[assignment]
    seq: int = 0
    clock: Clock | None = None
    token_value: str | None = None

    # -- enrolment, keys

    def enroll(self, code: str, *, fingerprint_pin: str | None = None) -> EnrollmentResponse:
        signed = SignedManifest.model_validate(self.http.get("/v1/keys").json())
        manifest = KeyManifest.model_validate_json(signed.payload)
        signing_public = b64decode(manifest.signing_key.public_key)
        verify_statement(
            load_signing_public(signing_public),
            "manifest",
            signed.payload.encode(),
            signed.signature,
        )
        if fingerprint_pin is not None:
            assert fingerprint(signing_public) == fingerprint_pin
        pub = signing_public_bytes(self.signing)
        xpub = self.exchange.public_key().public_bytes_raw()
        proof = self.signing.sign(enrollment_proof_message(code, manifest.deployment_id, pub, xpub))
        request = EnrollmentRequest(
            code=code,
            device_name="test tablet",
            signing_key=b64encode(pub),
            exchange_key=b64encode(xpub),
            proof=b64encode(proof),
        )
        response = self.http.post("/v1/devices/enroll", json=request.model_dump(mode="json"))
        assert response.status_code == 201, response.text
        enrolled = EnrollmentResponse.model_validate(response.json())
        self.device_id = enrolled.device_id
        self.camp_id = enrolled.camp_id
        self.deployment_id = enrolled.deployment_id
        self.manifest = KeyManifest.model_validate_json(enrolled.manifest.payload)
        self.clock = Clock(node=node_id_for(enrolled.device_id))
        self.clock.receive(HLC.decode(enrolled.server_hlc))
        return enrolled

    def refresh_manifest(self) -> None:
        signed = SignedManifest.model_validate(self.http.get("/v1/keys").json())
        self.manifest = KeyManifest.model_validate_json(signed.payload)

    def transport_key(self, kind: KeyKind = KeyKind.X25519) -> tuple[str, Any]:
        assert self.manifest is not None
        for key in self.manifest.transport_keys:
            if key.status == "active" and key.suite == kind.value:
                return key.kid, load_transport_public(kind, b64decode(key.public_key))
        raise AssertionError(f"no active {kind} key")

    # -- operations

    def hlc(self) -> str:
        assert self.clock is not None
        return str(self.clock.now())

    def household(self, hid: uuid.UUID | None = None, **fields: Any) -> PatchOp:
        hid = hid or uuid7()
        fields = {"arrival_type": "deported", "status": "active", **fields}
        needs = fields.pop("needs", ())
        return self.patch("household", hid, fields, sets={"needs": list(needs)} if needs else {})

    def person(
        self, household_id: uuid.UUID, pid: uuid.UUID | None = None, **fields: Any
    ) -> PatchOp:
        fields = {
            "household_id": str(household_id),
            "given_name": "Canary",
            "family_name": "Test",
            "sex": "female",
            **fields,
        }
        return self.patch("person", pid or uuid7(), fields)

    def patch(
        self,
        entity: str,
        record_id: uuid.UUID,
        fields: dict[str, Any],
        *,
        bases: dict[str, str | None] | None = None,
        sets: dict[str, list[str]] | None = None,
        hlc: str | None = None,
    ) -> PatchOp:
        stamp = hlc or self.hlc()
        return PatchOp(
            op_id=uuid7(),
            entity=entity,  # type: ignore[arg-type]
            id=record_id,
            fields={
                k: FieldWrite(value=v, hlc=stamp, base=(bases or {}).get(k))
                for k, v in fields.items()
            },
            sets={
                name: [SetChange(element=e, present=True, hlc=stamp) for e in elements]
                for name, elements in (sets or {}).items()
            },
        )

    def service(
        self,
        household_id: uuid.UUID,
        service: str = "food_ration",
        *,
        delivered_at: dt.datetime | None = None,
    ) -> ServiceOp:
        return ServiceOp(
            op_id=uuid7(),
            id=uuid7(),
            hlc=self.hlc(),
            household_id=household_id,
            service=service,
            delivered_at=delivered_at or dt.datetime.now(dt.UTC),
        )

    # -- push

    def seal_batch(
        self,
        ops: list[Any],
        *,
        seq: int | None = None,
        batch_id: uuid.UUID | None = None,
        kind: KeyKind = KeyKind.X25519,
        suite: Suite = DEFAULT_SUITE,
        rkid: str | None = None,
        backlog: int = 0,
        raw_plaintext: bytes | None = None,
    ) -> tuple[uuid.UUID, bytes]:
        """Seal ops (models or raw dicts) as the next batch; ``seq`` defaults to the next one."""
        assert self.device_id is not None
        assert self.deployment_id is not None
        if seq is None:
            self.seq += 1
            seq = self.seq
        batch_id = batch_id or uuid7()
        kid, public = self.transport_key(kind)
        if raw_plaintext is None:
            batch = Batch(
                batch_id=batch_id,
                device_id=self.device_id,
                seq=seq,
                operator=self.operator,
                hlc=self.hlc(),
                ops=[op if isinstance(op, dict) else op.model_dump(mode="json") for op in ops],
                backlog=backlog,
            )
            raw_plaintext = batch.model_dump_json().encode()
        header = EnvelopeHeader(
            typ="push",
            aud=self.deployment_id,
            snd=str(self.device_id),
            skid=signing_key_id(self.signing),
            rkid=rkid or kid,
            batch=batch_id,
            seq=seq,
            len=0,
        )
        sealed = seal(
            raw_plaintext, header, recipient_key=public, signing_key=self.signing, suite=suite
        )
        return batch_id, sealed

    def put(self, batch_id: uuid.UUID, data: bytes) -> Any:
        return self.http.put(f"/v1/sync/batches/{batch_id}", content=data, headers=OCTETS)

    def push(self, ops: list[Any], **kw: Any) -> Receipt:
        batch_id, data = self.seal_batch(ops, **kw)
        response = self.put(batch_id, data)
        assert response.status_code == 200, response.text
        return self.receipt(response.content)

    # -- open server envelopes

    def open(self, data: bytes, typ: str) -> bytes:
        assert self.deployment_id is not None
        sealed = parse_envelope(data, deployment_id=self.deployment_id)
        assert sealed.header.typ == typ
        assert sealed.header.snd == "server"
        keys = _ServerKeys(self)
        sealed.verify(keys.sender_key(sealed.header))
        return sealed.decrypt(keys.recipient_key(sealed.header, sealed.suite))

    def receipt(self, data: bytes) -> Receipt:
        receipt = Receipt.model_validate_json(self.open(data, "receipt"))
        assert self.clock is not None
        self.clock.receive(HLC.decode(receipt.server_hlc))
        return receipt

    def verify_wipe(self, details: dict[str, Any]) -> None:
        from campsync_sync import wipe_statement

        assert self.manifest is not None
        assert self.device_id is not None
        wipe = details["wipe"]
        assert wipe["device_id"] == str(self.device_id)
        verify_statement(
            load_signing_public(b64decode(self.manifest.signing_key.public_key)),
            "wipe",
            wipe_statement(wipe["deployment_id"], self.device_id),
            wipe["signature"],
        )

    # -- tokens, pull

    def token(self) -> str:
        assert self.device_id is not None
        challenge = self.http.post("/v1/sync/challenge", json={"device_id": str(self.device_id)})
        assert challenge.status_code == 200, challenge.text
        text = challenge.json()["challenge"]
        signature = sign_statement(
            self.signing,
            "device-token",
            f"{self.deployment_id}\0{self.device_id}\0{text}".encode(),
        )
        response = self.http.post(
            "/v1/sync/token",
            json={"device_id": str(self.device_id), "challenge": text, "signature": signature},
        )
        assert response.status_code == 200, response.text
        self.token_value = response.json()["token"]
        return self.token_value

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_value or self.token()}"}

    def pull_raw(self, cursor: int = 0, limit: int = 500) -> Any:
        return self.http.get(
            "/v1/sync/changes", params={"cursor": cursor, "limit": limit}, headers=self.auth()
        )

    def pull(self, cursor: int = 0, limit: int = 500) -> PullPage:
        response = self.pull_raw(cursor, limit)
        assert response.status_code == 200, response.text
        return PullPage.model_validate_json(self.open(response.content, "pull"))

    def pull_all(self, cursor: int = 0, limit: int = 500) -> tuple[dict[uuid.UUID, Any], int, int]:
        """Pull until done; returns the latest state per id, the final cursor, the page count."""
        rows: dict[uuid.UUID, Any] = {}
        pages = 0
        while True:
            page = self.pull(cursor, limit)
            pages += 1
            assert page.next_cursor >= cursor
            for row in page.changes:
                rows[row.id] = row
            cursor = page.next_cursor
            if not page.has_more:
                return rows, cursor, pages


def signing_key_id(key: Ed25519PrivateKey) -> str:
    from campsync_sync import key_id

    return key_id(signing_public_bytes(key))


def decode_json(data: bytes) -> Any:
    return orjson.loads(data)


def invite_of(payload: str) -> EnrollmentInvite:
    return EnrollmentInvite.model_validate_json(payload)
