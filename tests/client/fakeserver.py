"""An in-memory server that follows docs/sync-http.md, built on campsync_sync alone.

It lets the client's tests run where only campsync-sync and campsync-client are installed. It
seals, signs, checks and merges with the protocol package, exactly as the contract says; it
keeps no durability and no audit log. ``FakeServer.transport()`` is an ``httpx.MockTransport``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from campsync_sync import (
    HLC,
    Batch,
    ChallengeRequest,
    Clock,
    DeleteOp,
    EnrollmentInvite,
    EnrollmentRequest,
    EnrollmentResponse,
    EnvelopeHeader,
    ErrorBody,
    ErrorCode,
    EventState,
    KeyDestroyed,
    KeyInfo,
    KeyKind,
    KeyManifest,
    OpResult,
    Outcome,
    PatchOp,
    ProtocolError,
    PullPage,
    Receipt,
    RecordState,
    ReferralOp,
    Rejected,
    RejectReason,
    RestoreOp,
    ServiceOp,
    SignedManifest,
    TokenRequest,
    TransportKeyPair,
    UnknownKey,
    VoidOp,
    apply_event_op,
    apply_registry_op,
    apply_void,
    b64decode,
    b64encode,
    double_distribution,
    enrollment_proof_message,
    fingerprint,
    key_id,
    load_signing_public,
    normalize_operation,
    parse_envelope,
    parse_operation,
    record_state_to_row,
    seal,
    sign_statement,
    signing_public_bytes,
    uuid7,
    verify_statement,
    wipe_statement,
)
from campsync_sync.fields import Entity
from campsync_sync.wire import RowState
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import ValidationError

NOW = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


@dataclass
class Device:
    id: uuid.UUID
    camp_id: str
    signing_key: bytes
    exchange_key: bytes
    last_seq: int = 0
    revoked: bool = False


@dataclass
class Stored:
    entity: Entity
    camp_id: str
    state: RecordState | EventState
    seq: int = 0


def _error(code: ErrorCode, message: str, details: Any = None) -> httpx.Response:
    from campsync_sync import ERROR_STATUS

    body = ErrorBody.of(code, message, details).model_dump(mode="json")
    return httpx.Response(ERROR_STATUS[code], json=body)


@dataclass
class FakeServer:
    camp_id: str = "camp-1"
    deployment_id: str = "dep-test"
    url: str = "http://campsync.test"
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    transport_keys: list[TransportKeyPair] = field(
        default_factory=lambda: [TransportKeyPair.generate()]
    )
    destroyed: dict[str, TransportKeyPair] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    devices: dict[uuid.UUID, Device] = field(default_factory=dict)
    batches: dict[uuid.UUID, tuple[str, bytes, int]] = field(default_factory=dict)
    records: dict[uuid.UUID, Stored] = field(default_factory=dict)
    conflicts: list[Any] = field(default_factory=list)
    flags: list[Any] = field(default_factory=list)
    counter: int = 0
    challenges: dict[str, uuid.UUID] = field(default_factory=dict)
    tokens: dict[str, uuid.UUID] = field(default_factory=dict)
    clock: Clock = field(default_factory=lambda: Clock(node=secrets.randbits(64)))
    requests: list[str] = field(default_factory=list)
    applied_ops: int = 0
    max_page_size: int = 1000
    wipe_key: Ed25519PrivateKey | None = None
    """Signs wipe orders when set: a forger's key."""

    # ------------------------------------------------------------------ admin

    def code(self, camp_id: str | None = None) -> str:
        code = secrets.token_hex(6)
        self.codes[code] = camp_id or self.camp_id
        return code

    def invite(self) -> str:
        return EnrollmentInvite(
            server_url=self.url,
            deployment_id=self.deployment_id,
            code=self.code(),
            # fingerprint() is 79 characters and the field takes 64 (reported): hex digits only.
            server_key_fingerprint=self.fingerprint.replace("-", ""),
            expires_at=NOW + dt.timedelta(days=1),
        ).model_dump_json()

    @property
    def fingerprint(self) -> str:
        return fingerprint(signing_public_bytes(self.signing_key))

    def revoke(self, device_id: uuid.UUID) -> None:
        self.devices[device_id].revoked = True

    def rotate(self, *, destroy_old: bool = True) -> None:
        old = self.transport_keys
        self.transport_keys = [TransportKeyPair.generate()]
        if destroy_old:
            self.destroyed.update({k.kid: k for k in old})
        else:
            self.transport_keys += old

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def live(self, entity: Entity) -> dict[uuid.UUID, RecordState | EventState]:
        out = {}
        for rid, stored in self.records.items():
            state = stored.state
            if stored.entity != entity:
                continue
            if isinstance(state, RecordState) and (state.is_deleted or state.erased):
                continue
            out[rid] = state
        return out

    # ------------------------------------------------------------------ keys

    def manifest(self) -> SignedManifest:
        pub = signing_public_bytes(self.signing_key)
        manifest = KeyManifest(
            deployment_id=self.deployment_id,
            issued_at=NOW,
            signing_key=KeyInfo(
                kid=key_id(pub), suite="ed25519", public_key=b64encode(pub), not_before=NOW
            ),
            transport_keys=[
                KeyInfo(
                    kid=k.kid,
                    suite=KeyKind.X25519.value,
                    public_key=b64encode(k.public_bytes),
                    not_before=NOW + dt.timedelta(seconds=i),
                )
                for i, k in enumerate(self.transport_keys)
            ],
        )
        payload = manifest.model_dump_json()
        signature = sign_statement(self.signing_key, "manifest", payload.encode())
        return SignedManifest(payload=payload, signature=signature)

    def _seal_to(self, device: Device, typ: str, batch: uuid.UUID, seq: int, body: bytes) -> bytes:
        header = EnvelopeHeader(
            typ=typ,  # type: ignore[arg-type]
            aud=self.deployment_id,
            snd="server",
            skid=key_id(signing_public_bytes(self.signing_key)),
            rkid=key_id(device.exchange_key),
            batch=batch,
            seq=seq,
            len=0,
        )
        return seal(
            body,
            header,
            recipient_key=X25519PublicKey.from_public_bytes(device.exchange_key),
            signing_key=self.signing_key,
        )

    # ------------------------------------------------------------------ HTTP

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(f"{request.method} {path}")
        if request.method == "GET" and path == "/v1/keys":
            return httpx.Response(200, json=self.manifest().model_dump())
        if request.method == "POST" and path == "/v1/devices/enroll":
            return self._enroll(request)
        if request.method == "POST" and path == "/v1/sync/challenge":
            return self._challenge(request)
        if request.method == "POST" and path == "/v1/sync/token":
            return self._token(request)
        if request.method == "PUT" and path.startswith("/v1/sync/batches/"):
            return self._push(request, uuid.UUID(path.rsplit("/", 1)[1]))
        if request.method == "GET" and path == "/v1/sync/changes":
            return self._pull(request)
        return _error(ErrorCode.NOT_FOUND, "no such route")

    def _enroll(self, request: httpx.Request) -> httpx.Response:
        body = EnrollmentRequest.model_validate_json(request.content)
        camp = self.codes.pop(body.code, None)
        if camp is None:
            return _error(ErrorCode.ENROLLMENT_CODE_INVALID, "enrolment code invalid")
        signing, exchange = b64decode(body.signing_key), b64decode(body.exchange_key)
        message = enrollment_proof_message(body.code, self.deployment_id, signing, exchange)
        try:
            load_signing_public(signing).verify(b64decode(body.proof), message)
        except Exception:
            return _error(ErrorCode.PROOF_INVALID, "proof invalid")
        device = Device(uuid7(), camp, signing, exchange)
        self.devices[device.id] = device
        answer = EnrollmentResponse(
            device_id=device.id,
            camp_id=camp,
            deployment_id=self.deployment_id,
            next_seq=1,
            server_hlc=str(self.clock.now()),
            manifest=self.manifest(),
        )
        return httpx.Response(201, json=answer.model_dump(mode="json"))

    def _wipe_order(self, device: Device) -> httpx.Response:
        statement = wipe_statement(self.deployment_id, device.id)
        order = {
            "deployment_id": self.deployment_id,
            "device_id": str(device.id),
            "signature": sign_statement(self.wipe_key or self.signing_key, "wipe", statement),
        }
        return _error(ErrorCode.DEVICE_REVOKED, "device revoked", {"wipe": order})

    def _challenge(self, request: httpx.Request) -> httpx.Response:
        body = ChallengeRequest.model_validate_json(request.content)
        device = self.devices.get(body.device_id)
        if device is None:
            return _error(ErrorCode.DEVICE_UNKNOWN, "unknown device")
        if device.revoked:
            return self._wipe_order(device)
        challenge = secrets.token_urlsafe(16)
        self.challenges[challenge] = device.id
        expires = NOW + dt.timedelta(minutes=2)
        return httpx.Response(200, json={"challenge": challenge, "expires_at": expires.isoformat()})

    def _token(self, request: httpx.Request) -> httpx.Response:
        body = TokenRequest.model_validate_json(request.content)
        device = self.devices.get(body.device_id)
        if device is None or self.challenges.pop(body.challenge, None) != device.id:
            return _error(ErrorCode.UNAUTHENTICATED, "bad challenge")
        if device.revoked:
            return self._wipe_order(device)
        statement = f"{self.deployment_id}\0{device.id}\0{body.challenge}".encode()
        verify_statement(
            load_signing_public(device.signing_key), "device-token", statement, body.signature
        )
        token = secrets.token_urlsafe(24)
        self.tokens[token] = device.id
        expires = NOW + dt.timedelta(minutes=15)
        return httpx.Response(200, json={"token": token, "expires_at": expires.isoformat()})

    def _device_of(self, request: httpx.Request) -> Device | None:
        auth = request.headers.get("Authorization", "")
        device_id = self.tokens.get(auth.removeprefix("Bearer "))
        return None if device_id is None else self.devices[device_id]

    # ------------------------------------------------------------------ push

    def _push(self, request: httpx.Request, batch_id: uuid.UUID) -> httpx.Response:
        data = request.content
        try:
            sealed = parse_envelope(data, deployment_id=self.deployment_id)
        except ProtocolError as exc:
            return _error(exc.code, str(exc))
        header = sealed.header
        if header.typ != "push" or header.batch != batch_id:
            return _error(ErrorCode.BAD_ENVELOPE, "not a push for this batch")
        device = self.devices.get(uuid.UUID(header.snd))
        if device is None:
            return _error(ErrorCode.DEVICE_UNKNOWN, "unknown device")
        if device.revoked:
            return self._wipe_order(device)
        try:
            sealed.verify(load_signing_public(device.signing_key))
        except ProtocolError as exc:
            return _error(exc.code, str(exc))
        digest = hashlib.sha256(data).hexdigest()
        stored = self.batches.get(batch_id)
        if stored is not None:
            if stored[0] != digest:
                return _error(ErrorCode.BATCH_MISMATCH, "batch differs")
            return httpx.Response(200, content=stored[1])
        if header.seq > device.last_seq + 1:
            return _error(ErrorCode.SEQ_GAP, "seq gap", {"expected_seq": device.last_seq + 1})
        if header.seq <= device.last_seq:
            return _error(ErrorCode.SEQ_REUSED, "seq reused")
        try:
            key = self._recipient(header.rkid)
            plaintext = sealed.decrypt(key.private_key())
            batch = Batch.model_validate_json(plaintext)
        except ProtocolError as exc:
            return _error(exc.code, str(exc))
        except ValidationError:
            return _error(ErrorCode.BAD_PLAINTEXT, "bad batch")
        if batch.batch_id != batch_id or batch.device_id != device.id or batch.seq != header.seq:
            return _error(ErrorCode.BAD_PLAINTEXT, "batch differs from its header")
        self.clock.receive(HLC.decode(batch.hlc))
        results, changed = self._merge(device, batch)
        commit_seq = None
        if changed:
            self.counter += 1
            commit_seq = self.counter
            for rid in changed:
                self.records[rid].seq = commit_seq
        device.last_seq = header.seq
        receipt = Receipt(
            batch_id=batch_id,
            device_id=device.id,
            seq=header.seq,
            status="applied",  # type: ignore[arg-type]
            next_seq=device.last_seq + 1,
            commit_seq=commit_seq,
            server_hlc=str(self.clock.now()),
            received_at=NOW,
            results=results,
        )
        envelope = self._seal_to(
            device, "receipt", batch_id, header.seq, receipt.model_dump_json().encode()
        )
        self.batches[batch_id] = (digest, envelope, header.seq)
        return httpx.Response(200, content=envelope)

    def _recipient(self, kid: str) -> TransportKeyPair:
        for key in self.transport_keys:
            if key.kid == kid:
                return key
        if kid in self.destroyed:
            raise KeyDestroyed("transport key destroyed")
        raise UnknownKey("unknown transport key")

    def _merge(self, device: Device, batch: Batch) -> tuple[list[OpResult], list[uuid.UUID]]:
        results: list[OpResult] = []
        changed: list[uuid.UUID] = []
        for index, raw in enumerate(batch.ops):
            op_id = None
            try:
                op = normalize_operation(parse_operation(raw))
                op_id = op.op_id
                outcome, conflicts, flags, rid = self._apply(device, op)
            except ValidationError:
                results.append(
                    OpResult(index=index, outcome=Outcome.REJECTED, reason="invalid_operation")  # type: ignore[arg-type]
                )
                continue
            except Rejected as exc:
                results.append(
                    OpResult(
                        index=index,
                        op_id=op_id,
                        outcome=Outcome.REJECTED,
                        reason=exc.reason,
                        detail=exc.detail,
                    )
                )
                continue
            self.applied_ops += 1
            if rid is not None:
                changed.append(rid)
            results.append(
                OpResult(
                    index=index,
                    op_id=op_id,
                    outcome=outcome,
                    conflict_ids=conflicts,
                    flag_ids=flags,
                )
            )
        return results, changed

    def _apply(
        self, device: Device, op: Any
    ) -> tuple[Outcome, list[uuid.UUID], list[uuid.UUID], uuid.UUID | None]:
        if isinstance(op, PatchOp | DeleteOp | RestoreOp):
            entity = Entity(op.entity)
            stored = self.records.get(op.id)
            if stored is not None and stored.camp_id != device.camp_id:
                raise Rejected(RejectReason.OUT_OF_SCOPE, "another camp")
            if isinstance(op, PatchOp) and entity == Entity.PERSON and "household_id" in op.fields:
                household = self.records.get(uuid.UUID(str(op.fields["household_id"].value)))
                if household is None or household.entity != Entity.HOUSEHOLD:
                    raise Rejected(RejectReason.UNKNOWN_HOUSEHOLD, "household_id")
            state = None if stored is None else stored.state
            assert state is None or isinstance(state, RecordState)
            new, effect = apply_registry_op(entity, state, op)
            self.conflicts += effect.conflicts
            if stored is None:
                self.records[op.id] = Stored(entity, device.camp_id, new)
            else:
                stored.state = new
            rid = op.id if effect.kind != "noop" else None
            return effect.outcome, [c.id for c in effect.conflicts], [], rid
        if isinstance(op, ServiceOp | ReferralOp):
            if op.household_id not in self.records:
                raise Rejected(RejectReason.UNKNOWN_HOUSEHOLD, "household_id")
            stored = self.records.get(op.id)
            existing = None if stored is None else stored.state
            assert existing is None or isinstance(existing, EventState)
            new_event, effect = apply_event_op(existing, op)
            flags: list[uuid.UUID] = []
            outcome = effect.outcome
            if isinstance(op, ServiceOp) and existing is None:
                prior = list(self.live(Entity.SERVICE_DELIVERY).values())
                flag = double_distribution(op, [p for p in prior if isinstance(p, EventState)])
                if flag is not None:
                    self.flags.append(flag)
                    flags.append(flag.id)
                    outcome = Outcome.FLAGGED
            entity = Entity.SERVICE_DELIVERY if isinstance(op, ServiceOp) else Entity.REFERRAL
            if stored is None:
                self.records[op.id] = Stored(entity, device.camp_id, new_event)
            rid = op.id if effect.kind != "noop" else None
            return outcome, [], flags, rid
        assert isinstance(op, VoidOp)
        stored = self.records.get(op.id)
        existing = None if stored is None else stored.state
        assert existing is None or isinstance(existing, EventState)
        voided, effect = apply_void(existing, op)
        assert stored is not None
        stored.state = voided
        return effect.outcome, [], [], op.id if effect.kind != "noop" else None

    # ------------------------------------------------------------------ pull

    def row(self, rid: uuid.UUID, stored: Stored) -> RowState:
        if isinstance(stored.state, RecordState):
            return record_state_to_row(stored.entity, rid, stored.seq, stored.state)
        values = json.loads(json.dumps(dict(stored.state.values)))
        values["voided"] = stored.state.voided
        values["void_reason"] = stored.state.void_reason
        return RowState(entity=stored.entity, id=rid, seq=stored.seq, values=values)

    def _pull(self, request: httpx.Request) -> httpx.Response:
        device = self._device_of(request)
        if device is None:
            return _error(ErrorCode.UNAUTHENTICATED, "token required")
        if device.revoked:
            return self._wipe_order(device)
        cursor = int(request.url.params.get("cursor", 0))
        if cursor > self.counter:
            return _error(ErrorCode.CURSOR_INVALID, "pull again from 0", {"cursor": cursor})
        limit = int(request.url.params.get("limit", 500))
        if limit > self.max_page_size:
            return _error(
                ErrorCode.VALIDATION_ERROR, "limit too high", {"limit": self.max_page_size}
            )
        rows = sorted(
            (s.seq, rid)
            for rid, s in self.records.items()
            if s.seq > cursor and s.camp_id == device.camp_id
        )
        taken: list[tuple[int, uuid.UUID]] = []
        for seq, rid in rows:
            # Whole commit groups only.
            if len(taken) >= limit and seq != taken[-1][0]:
                break
            taken.append((seq, rid))
        next_cursor = taken[-1][0] if taken else max(cursor, self.counter)
        page = PullPage(
            camp_id=device.camp_id,
            cursor=cursor,
            next_cursor=next_cursor,
            has_more=len(taken) < len(rows),
            server_hlc=str(self.clock.now()),
            changes=[self.row(rid, self.records[rid]) for _, rid in taken],
        )
        envelope = self._seal_to(device, "pull", uuid7(), cursor, page.model_dump_json().encode())
        return httpx.Response(200, content=envelope)
