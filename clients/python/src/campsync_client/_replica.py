"""The tablet's replica: record views, the outbox, sealing, receipts and pulled pages.

Each record keeps two sealed states: ``base``, the server's state as last pulled, and
``local``, the view the operator sees while edits are queued (``NULL`` when it equals base).
The view is ``base`` with the queued operations applied by the protocol's merge rules, so a
pulled page never overwrites a pending edit: the two are merged exactly as the server will
merge them. An operation leaves the overlay once its receipt is in and a pull has passed its
``commit_seq`` (the server's write checkpoint); the view is then the server's state, clamped
clocks included.

Outbox states::

    PENDING (batch_id NULL) ──seal──▶ SEALED (batch row, envelope bytes) ──receipt──▶ ACKED
        ──pull past commit_seq──▶ retired (the plaintext is deleted; the outcome is kept)

Every arrow is one store transaction. The envelope is persisted before it is sent, so a retry
sends identical bytes; the plaintext stays (sealed) until acknowledged, so a ``key_destroyed``
answer can be re-sealed with the same batch id and seq.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from campsync_sync import (
    HLC,
    REGISTRY_ENTITIES,
    Batch,
    Clock,
    DeleteOp,
    Entity,
    EnvelopeHeader,
    EventState,
    KeyManifest,
    Operation,
    OpResult,
    Outcome,
    PatchOp,
    PullPage,
    Receipt,
    RecordState,
    ReferralOp,
    Rejected,
    RestoreOp,
    RowState,
    ServiceOp,
    SignedManifest,
    apply_registry_op,
    apply_void,
    event_state_of,
    name_keys,
    parse_operation,
    record_state_from_row,
    seal,
    uuid7,
)

from campsync_client._errors import StoreError
from campsync_client._identity import Identity, TransportKey, pick_transport_key
from campsync_client._store import Store

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_OPS", "Replica", "Row", "SealedBatch", "State"]

MAX_BATCH_OPS: Final = 500
MAX_BATCH_BYTES: Final = 1024 * 1024
MAX_OUTCOMES: Final = 20_000
NAME_FIELDS: Final = (
    "given_name",
    "family_name",
    "father_name",
    "given_name_local",
    "family_name_local",
    "father_name_local",
)

State = RecordState | EventState


def _utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


# --------------------------------------------------------------------------- state codec


def _dump(state: State) -> dict[str, Any]:
    if isinstance(state, RecordState):
        return {
            "values": state.values,
            "clocks": state.clocks,
            "sets": {n: {e: list(pc) for e, pc in els.items()} for n, els in state.sets.items()},
            "deleted": state.deleted,
            "restored": state.restored,
            "erased": state.erased,
        }
    return {
        "values": dict(state.values),
        "hlc": state.hlc,
        "voided": state.voided,
        "void_reason": state.void_reason,
    }


def _load(entity: Entity, record_id: uuid.UUID, data: dict[str, Any]) -> State:
    if entity in REGISTRY_ENTITIES:
        return RecordState(
            values=data["values"],
            clocks=data["clocks"],
            sets={
                n: {e: (pc[0], pc[1]) for e, pc in els.items()} for n, els in data["sets"].items()
            },
            deleted=data["deleted"],
            restored=data["restored"],
            erased=data["erased"],
        )
    return EventState(
        entity, record_id, data["values"], data["hlc"], data["voided"], data["void_reason"]
    )


def _from_row(row: RowState) -> tuple[State, bool]:
    """A pulled row as a state, and whether the record is live."""
    entity = Entity(row.entity)
    if entity in REGISTRY_ENTITIES:
        state = record_state_from_row(row)
        return state, not (state.is_deleted or state.erased)
    values = dict(row.values)
    voided = values.pop("voided", None)
    reason = values.pop("void_reason", None)
    mark = voided if isinstance(voided, str) else ("voided" if voided else None)
    note = reason if isinstance(reason, str) else None
    return EventState(entity, row.id, values, "", mark, note), not row.erased


def _target(op: Operation) -> tuple[Entity, uuid.UUID]:
    if isinstance(op, ServiceOp):
        return Entity.SERVICE_DELIVERY, op.id
    if isinstance(op, ReferralOp):
        return Entity.REFERRAL, op.id
    return Entity(op.entity), op.id


def _apply(entity: Entity, state: State | None, op: Operation) -> State | None:
    """Apply one of our own operations to a view, by the protocol's rules."""
    try:
        if isinstance(op, PatchOp | DeleteOp | RestoreOp):
            current = state if isinstance(state, RecordState) else None
            return apply_registry_op(entity, current, op)[0]
        if isinstance(op, ServiceOp | ReferralOp):
            # An event is immutable: once the server's copy is here, it is the truth.
            return state if isinstance(state, EventState) else event_state_of(op)
        if isinstance(state, EventState):
            return apply_void(state, op)[0]
    except Rejected:
        pass  # the server will reject it too (e.g. an erased record); the view stays
    return state


def _live(state: State | None) -> bool:
    if isinstance(state, RecordState):
        return not (state.is_deleted or state.erased)
    return state is not None


@dataclass(slots=True)
class Row:
    """One record: the server's state and the local view."""

    entity: Entity
    id: uuid.UUID
    base: State | None
    local: State | None

    @property
    def view(self) -> State | None:
        """What the operator sees."""
        return self.local if self.local is not None else self.base


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A batch sealed and persisted, ready to send (again)."""

    batch_id: uuid.UUID
    seq: int
    envelope: bytes
    ops: int


class Replica:
    """The tablet's data on one unlocked store."""

    def __init__(
        self,
        store: Store,
        *,
        wall: Callable[[], int] | None = None,
        operator: str | None = None,
    ) -> None:
        self.store = store
        self.identity = identity = self.load_identity(store)
        self.operator = operator
        self.conn = store.conn
        self.vault = store.vault
        (last,) = self.conn.execute("SELECT hlc FROM sync_state").fetchone()
        self.clock = Clock(node=identity.node, last=HLC.decode(last))
        if wall is not None:
            self.clock.wall = wall

    @classmethod
    def initialise(
        cls,
        store: Store,
        identity: Identity,
        manifest: SignedManifest,
        *,
        next_seq: int,
        server_hlc: str,
    ) -> None:
        """Write a freshly enrolled device's identity and sync position."""
        clock = Clock(node=identity.node)
        clock.receive(HLC.decode(server_hlc))
        with store.transaction("enroll"):
            store.put_sealed("identity", identity.to_json())
            store.put_sealed("manifest", manifest.model_dump())
            store.conn.execute(
                "INSERT INTO sync_state (id, next_seq, cursor, hlc) VALUES (1, ?, 0, ?)",
                (next_seq, str(clock.last)),
            )

    @staticmethod
    def load_identity(store: Store) -> Identity:
        """The device identity sealed in the store.

        Raises:
            StoreError: when enrolment never completed on this store.
        """
        try:
            return Identity.from_json(store.get_sealed("identity"))
        except StoreError:
            raise StoreError(
                "enrolment did not complete: delete this store and enrol again"
            ) from None

    # ------------------------------------------------------------------ clock

    def now(self) -> str:
        """A fresh timestamp for a local write; saved by the caller's transaction."""
        return str(self.clock.now())

    def _save_clock(self) -> None:
        self.conn.execute("UPDATE sync_state SET hlc = ?", (str(self.clock.last),))

    def receive(self, stamp: str) -> None:
        """Merge a server timestamp into the clock (inside the caller's transaction)."""
        self.clock.receive(HLC.decode(stamp))
        self._save_clock()

    def wall_time(self) -> dt.datetime:
        """The tablet's wall clock (which may be wrong), as an aware datetime."""
        return dt.datetime.fromtimestamp(self.clock.wall() / 1000, dt.UTC)

    # ------------------------------------------------------------------ rows

    def _open(self, entity: Entity, rid: str, column: str, blob: bytes | None) -> State | None:
        if blob is None:
            return None
        return _load(entity, uuid.UUID(rid), self.store.open_json("record", column, rid, blob))

    def row(self, record_id: uuid.UUID) -> Row | None:
        """A record with both its states, or ``None``."""
        rid = str(record_id)
        found = self.conn.execute(
            "SELECT entity, base, local FROM record WHERE id = ?", (rid,)
        ).fetchone()
        if found is None:
            return None
        entity = Entity(found[0])
        return Row(
            entity,
            record_id,
            self._open(entity, rid, "base", found[1]),
            self._open(entity, rid, "local", found[2]),
        )

    def views(
        self, entity: Entity, *, household_id: uuid.UUID | None = None, live: bool = True
    ) -> list[tuple[uuid.UUID, State]]:
        """The views of an entity's records (of one household), decrypted."""
        sql = "SELECT id, base, local FROM record WHERE entity = ?"
        args: list[Any] = [entity.value]
        if household_id is not None:
            sql += " AND household_id = ?"
            args.append(str(household_id))
        if live:
            sql += " AND live = 1"
        out: list[tuple[uuid.UUID, State]] = []
        for rid, base, local in self.conn.execute(sql, args).fetchall():
            column, blob = ("local", local) if local is not None else ("base", base)
            state = self._open(entity, rid, column, blob)
            if state is not None:
                out.append((uuid.UUID(rid), state))
        return out

    def views_of(self, ids: Iterable[str]) -> list[tuple[uuid.UUID, Entity, State]]:
        """The live views of the given records."""
        out: list[tuple[uuid.UUID, Entity, State]] = []
        for rid in ids:
            row = self.row(uuid.UUID(rid))
            view = None if row is None else row.view
            if row is not None and view is not None and _live(view):
                out.append((row.id, row.entity, view))
        return out

    def _write(self, row: Row, *, base_changed: bool) -> None:
        rid = str(row.id)
        view = row.view
        if view is None:
            self.conn.execute("DELETE FROM record WHERE id = ?", (rid,))
            self.conn.execute("DELETE FROM name_index WHERE person_id = ?", (rid,))
            return
        household = view.values.get("household_id") if row.entity != Entity.HOUSEHOLD else None
        seal_json = self.vault.seal_json
        local = None if row.local is None else seal_json("record", "local", rid, _dump(row.local))
        live = _live(view)
        if base_changed:
            base = None if row.base is None else seal_json("record", "base", rid, _dump(row.base))
            self.conn.execute(
                "INSERT INTO record (id, entity, household_id, live, base, local)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " entity = excluded.entity, household_id = excluded.household_id,"
                " live = excluded.live, base = excluded.base, local = excluded.local",
                (rid, row.entity.value, household, live, base, local),
            )
        else:
            self.conn.execute(
                "INSERT INTO record (id, entity, household_id, live, local)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " household_id = excluded.household_id, live = excluded.live,"
                " local = excluded.local",
                (rid, row.entity.value, household, live, local),
            )
        if row.entity == Entity.PERSON:
            self._index(rid, view if live else None)

    def _index(self, rid: str, state: State | None) -> None:
        self.conn.execute("DELETE FROM name_index WHERE person_id = ?", (rid,))
        if state is None:
            return
        tokens = self.tokens_of(state.values)
        self.conn.executemany(
            "INSERT OR IGNORE INTO name_index (token, person_id) VALUES (?, ?)",
            [(token, rid) for token in tokens],
        )

    def tokens_of(self, values: dict[str, Any] | Any) -> set[bytes]:
        """Blind-index tokens of a person's names, document number and phone."""
        token = self.vault.token
        tokens = {token("name", k) for k in name_keys(values.get(f) for f in NAME_FIELDS)}
        if values.get("document_number"):
            tokens.add(token("doc", str(values["document_number"]).upper()))
        if values.get("phone"):
            tokens.add(token("phone", str(values["phone"]).lstrip("+")))
        return tokens

    def lookup(self, tokens: Iterable[bytes]) -> dict[str, int]:
        """Person ids matching any token, with how many tokens each matched."""
        hits: dict[str, int] = {}
        for token in set(tokens):
            for (pid,) in self.conn.execute(
                "SELECT person_id FROM name_index WHERE token = ?", (token,)
            ):
                hits[pid] = hits.get(pid, 0) + 1
        return hits

    def _ops_of(self, rid: str) -> list[Operation]:
        rows = self.conn.execute(
            "SELECT op_id, body FROM outbox WHERE record_id = ? ORDER BY n", (rid,)
        ).fetchall()
        return [self._op(op_id, body) for op_id, body in rows]

    def _op(self, op_id: str, body: bytes) -> Operation:
        return parse_operation(self.store.open_json("outbox", "body", op_id, body))

    def _overlay(self, entity: Entity, base: State | None, rid: str) -> State | None:
        view = base
        for op in self._ops_of(rid):
            view = _apply(entity, view, op)
        return view

    def pending_ids(self, among: Iterable[uuid.UUID] | None = None) -> set[str]:
        """Ids of records (all, or ``among`` these) with operations not yet retired."""
        if among is None:
            return {rid for (rid,) in self.conn.execute("SELECT DISTINCT record_id FROM outbox")}
        ids = [str(i) for i in among]
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = "SELECT DISTINCT record_id FROM outbox WHERE record_id IN "
            sql += f"({', '.join('?' * len(chunk))})"
            found.update(rid for (rid,) in self.conn.execute(sql, chunk))
        return found

    # ------------------------------------------------------------------ local edits

    def commit(self, ops: Sequence[Operation]) -> None:
        """Queue operations and apply them to the views, in one transaction."""
        with self.store.transaction("edit"):
            for op in ops:
                entity, record_id = _target(op)
                rid, op_id = str(record_id), str(op.op_id)
                body = self.vault.seal_json("outbox", "body", op_id, op.model_dump(mode="json"))
                self.conn.execute(
                    "INSERT INTO outbox (op_id, op, entity, record_id, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (op_id, op.op, entity.value, rid, body),
                )
                row = self.row(record_id) or Row(entity, record_id, None, None)
                row.local = _apply(entity, row.view, op)
                self._write(row, base_changed=False)
            self._save_clock()

    # ------------------------------------------------------------------ outbox

    def pending_count(self) -> int:
        """Operations not yet acknowledged by the server."""
        (count,) = self.conn.execute("SELECT count(*) FROM outbox WHERE acked = 0").fetchone()
        return int(count)

    def unsealed_count(self) -> int:
        """Operations not yet sealed into a batch."""
        (count,) = self.conn.execute(
            "SELECT count(*) FROM outbox WHERE batch_id IS NULL"
        ).fetchone()
        return int(count)

    def sealed_batches(self) -> list[SealedBatch]:
        """Batches sealed and not yet acknowledged, in seq order."""
        rows = self.conn.execute(
            "SELECT batch_id, seq, envelope, ops FROM batch WHERE acked = 0 ORDER BY seq"
        ).fetchall()
        return [SealedBatch(uuid.UUID(b), s, bytes(e), n) for b, s, e, n in rows]

    def manifest(self) -> KeyManifest:
        """The last verified manifest of server keys."""
        signed = SignedManifest.model_validate(self.store.get_sealed("manifest"))
        return KeyManifest.model_validate_json(signed.payload)

    def save_manifest(self, manifest: SignedManifest) -> None:
        """Store a manifest verified by the caller."""
        with self.store.transaction("manifest"):
            self.store.put_sealed("manifest", manifest.model_dump())

    def _seal(self, batch: Batch, key: TransportKey) -> bytes:
        header = EnvelopeHeader(
            typ="push",
            aud=self.identity.deployment_id,
            snd=str(self.identity.device_id),
            skid=self.identity.signing_kid,
            rkid=key.kid,
            batch=batch.batch_id,
            seq=batch.seq,
            len=0,
        )
        return seal(
            batch.model_dump_json().encode(),
            header,
            recipient_key=key.public,
            signing_key=self.identity.signing_key,
            suite=key.suite,
        )

    def seal_next(self) -> SealedBatch | None:
        """Seal the oldest pending operations into the next batch; ``None`` when none wait.

        A batch takes at most ``MAX_BATCH_OPS`` operations and ``MAX_BATCH_BYTES`` of JSON.
        """
        key = pick_transport_key(self.manifest())
        max_ops, max_bytes = MAX_BATCH_OPS, MAX_BATCH_BYTES
        with self.store.transaction("seal"):
            rows = self.conn.execute(
                "SELECT n, op_id, body FROM outbox WHERE batch_id IS NULL ORDER BY n LIMIT ?",
                (max_ops,),
            ).fetchall()
            if not rows:
                return None
            ops: list[dict[str, Any]] = []
            taken: list[int] = []
            size = 0
            for n, op_id, body in rows:
                op = self.store.open_json("outbox", "body", op_id, body)
                size += len(json.dumps(op))
                if ops and size > max_bytes:
                    break
                ops.append(op)
                taken.append(n)
            (seq,) = self.conn.execute("SELECT next_seq FROM sync_state").fetchone()
            batch = Batch(
                batch_id=uuid7(),
                device_id=self.identity.device_id,
                seq=seq,
                operator=self.operator,
                hlc=self.now(),
                ops=ops,
                backlog=self.unsealed_count() - len(ops),
            )
            envelope = self._seal(batch, key)
            operator = None
            if self.operator is not None:
                operator = self.vault.seal_json(
                    "batch", "operator", str(batch.batch_id), [self.operator]
                )
            self.conn.execute(
                "INSERT INTO batch (batch_id, seq, hlc, backlog, ops, operator, envelope,"
                " sealed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(batch.batch_id),
                    seq,
                    batch.hlc,
                    batch.backlog,
                    len(ops),
                    operator,
                    envelope,
                    _utcnow(),
                ),
            )
            self.conn.executemany(
                "UPDATE outbox SET batch_id = ? WHERE n = ?",
                [(str(batch.batch_id), n) for n in taken],
            )
            self.conn.execute("UPDATE sync_state SET next_seq = next_seq + 1")
            self._save_clock()
        return SealedBatch(batch.batch_id, seq, envelope, len(ops))

    def reseal(self, batch_id: uuid.UUID) -> SealedBatch:
        """Seal a batch again, same id, seq and operations, to the current transport key."""
        key = pick_transport_key(self.manifest())
        bid = str(batch_id)
        with self.store.transaction("reseal"):
            seq, hlc, backlog, sealed_operator = self.conn.execute(
                "SELECT seq, hlc, backlog, operator FROM batch WHERE batch_id = ?", (bid,)
            ).fetchone()
            operator = None
            if sealed_operator is not None:
                (operator,) = self.store.open_json("batch", "operator", bid, sealed_operator)
            ops = [
                self.store.open_json("outbox", "body", op_id, body)
                for op_id, body in self.conn.execute(
                    "SELECT op_id, body FROM outbox WHERE batch_id = ? ORDER BY n", (bid,)
                )
            ]
            batch = Batch(
                batch_id=batch_id,
                device_id=self.identity.device_id,
                seq=seq,
                operator=operator,
                hlc=hlc,
                ops=ops,
                backlog=backlog,
            )
            envelope = self._seal(batch, key)
            self.conn.execute("UPDATE batch SET envelope = ? WHERE batch_id = ?", (envelope, bid))
        return SealedBatch(batch_id, seq, envelope, len(ops))

    def apply_receipt(self, sent: SealedBatch, receipt: Receipt) -> list[OpResult]:
        """Mark a batch acknowledged and record each operation's outcome."""
        bid = str(sent.batch_id)
        with self.store.transaction("ack"):
            ops = self.conn.execute(
                "SELECT op_id, op, entity, record_id FROM outbox WHERE batch_id = ? ORDER BY n",
                (bid,),
            ).fetchall()
            by_index = {r.index: r for r in receipt.results}
            now = _utcnow()
            rows = []
            for index, (op_id, op, entity, rid) in enumerate(ops):
                result = by_index.get(index)
                outcome = result.outcome.value if result is not None else Outcome.APPLIED.value
                rows.append((
                    op_id, bid, op, entity, rid, outcome,
                    None if result is None or result.reason is None else result.reason.value,
                    None if result is None else result.detail,
                    0 if result is None else len(result.conflict_ids),
                    0 if result is None else len(result.flag_ids),
                    now,
                ))  # fmt: skip
            self.conn.executemany(
                "INSERT OR REPLACE INTO outcome (op_id, batch_id, op, entity, record_id, outcome,"
                " reason, detail, conflicts, flags, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.conn.execute(
                "DELETE FROM outcome WHERE op_id IN (SELECT op_id FROM outcome"
                " ORDER BY at DESC LIMIT -1 OFFSET ?)",
                (MAX_OUTCOMES,),
            )
            self.conn.execute(
                "UPDATE outbox SET acked = 1, commit_seq = ? WHERE batch_id = ?",
                (receipt.commit_seq, bid),
            )
            self.conn.execute(
                "UPDATE batch SET acked = 1, commit_seq = ?, acked_at = ?, envelope = NULL,"
                " operator = NULL WHERE batch_id = ?",
                (receipt.commit_seq, now, bid),
            )
            self.receive(receipt.server_hlc)
        return [by_index[i] for i in sorted(by_index)]

    # ------------------------------------------------------------------ pull

    @property
    def cursor(self) -> int:
        """The change-log position pulled so far."""
        (cursor,) = self.conn.execute("SELECT cursor FROM sync_state").fetchone()
        return int(cursor)

    def apply_page(self, page: PullPage) -> None:
        """Apply a pulled page and advance the cursor, in one transaction."""
        with self.store.transaction("pull"):
            queued = self.pending_ids()
            for change in page.changes:
                state, _ = _from_row(change)
                entity, rid = Entity(change.entity), str(change.id)
                local = self._overlay(entity, state, rid) if rid in queued else None
                self._write(Row(entity, change.id, state, local), base_changed=True)
            self.conn.execute("UPDATE sync_state SET cursor = ?", (page.next_cursor,))
            self.receive(page.server_hlc)
            self._retire(page.next_cursor)

    def _retire(self, cursor: int) -> None:
        """Drop acknowledged operations the pulled state now includes; rebuild their views."""
        done = [
            rid
            for (rid,) in self.conn.execute(
                "SELECT DISTINCT record_id FROM outbox WHERE acked = 1"
                " AND (commit_seq IS NULL OR commit_seq <= ?)",
                (cursor,),
            )
        ]
        if not done:
            return
        self.conn.execute(
            "DELETE FROM outbox WHERE acked = 1 AND (commit_seq IS NULL OR commit_seq <= ?)",
            (cursor,),
        )
        for rid in done:
            row = self.row(uuid.UUID(rid))
            if row is None:
                continue
            remaining = self._ops_of(rid)
            row.local = self._overlay(row.entity, row.base, rid) if remaining else None
            self._write(row, base_changed=False)

    def mark_synced(self) -> None:
        """Record the time of the last complete sync."""
        with self.store.transaction("synced"):
            self.conn.execute("UPDATE sync_state SET last_sync_at = ?", (_utcnow(),))

    def last_sync_at(self) -> dt.datetime | None:
        """When the last complete sync ended."""
        (text,) = self.conn.execute("SELECT last_sync_at FROM sync_state").fetchone()
        return dt.datetime.fromisoformat(text) if text else None

    def outcomes(self, kinds: Sequence[str] | None) -> list[tuple[Any, ...]]:
        """Stored outcomes, newest first, optionally of some kinds only."""
        sql = (
            "SELECT op_id, batch_id, op, entity, record_id, outcome, reason, detail, conflicts,"
            " flags, at FROM outcome"
        )
        args: list[Any] = []
        if kinds is not None:
            sql += f" WHERE outcome IN ({', '.join('?' * len(kinds))})"
            args.extend(kinds)
        return self.conn.execute(sql + " ORDER BY at DESC, op_id", args).fetchall()
