"""The tablet's replica: record views, local edits, pulled pages and the clock.

Each record keeps two sealed states: ``base``, the server's state as last pulled, and
``local``, the view the operator sees while edits are queued (``NULL`` when it equals base).
The view is ``base`` with the queued operations applied by the protocol's merge rules, so a
pulled page never overwrites a pending edit: the two are merged exactly as the server will
merge them. An operation leaves the overlay once its receipt is in (see
:mod:`campsync_client._outbox`) and a pull has passed its ``commit_seq``, the server's write
checkpoint; the view is then the server's state, clamped clocks included.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from campsync_sync import (
    HLC,
    NAME_FIELDS,
    Clock,
    Entity,
    KeyManifest,
    Operation,
    PullPage,
    SignedManifest,
    name_keys,
    parse_operation,
)

from campsync_client._errors import StoreError
from campsync_client._identity import Identity
from campsync_client._states import (
    Row,
    State,
    apply_own,
    dump_state,
    is_live,
    load_state,
    state_of_row,
    target_of,
)
from campsync_client._store import Store, utcnow

__all__ = ["Replica"]


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

    def save_clock(self) -> None:
        """Persist the clock (inside the caller's transaction): it never runs backwards."""
        self.conn.execute("UPDATE sync_state SET hlc = ?", (str(self.clock.last),))

    def receive(self, stamp: str) -> None:
        """Merge a server timestamp into the clock (inside the caller's transaction)."""
        self.clock.receive(HLC.decode(stamp))
        self.save_clock()

    def wall_time(self) -> dt.datetime:
        """The tablet's wall clock (which may be wrong), as an aware datetime."""
        return dt.datetime.fromtimestamp(self.clock.wall() / 1000, dt.UTC)

    # ------------------------------------------------------------------ rows

    def _open(self, entity: Entity, rid: str, column: str, blob: bytes | None) -> State | None:
        if blob is None:
            return None
        return load_state(entity, uuid.UUID(rid), self.store.open_json("record", column, rid, blob))

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
            if row is not None and view is not None and is_live(view):
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
        local = (
            None if row.local is None else seal_json("record", "local", rid, dump_state(row.local))
        )
        live = is_live(view)
        if base_changed:
            base = (
                None if row.base is None else seal_json("record", "base", rid, dump_state(row.base))
            )
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
            view = apply_own(entity, view, op)
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
                entity, record_id = target_of(op)
                rid, op_id = str(record_id), str(op.op_id)
                body = self.vault.seal_json("outbox", "body", op_id, op.model_dump(mode="json"))
                self.conn.execute(
                    "INSERT INTO outbox (op_id, op, entity, record_id, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (op_id, op.op, entity.value, rid, body),
                )
                row = self.row(record_id) or Row(entity, record_id, None, None)
                row.local = apply_own(entity, row.view, op)
                self._write(row, base_changed=False)
            self.save_clock()

    # ------------------------------------------------------------------ server keys

    def manifest(self) -> KeyManifest:
        """The last verified manifest of server keys."""
        signed = SignedManifest.model_validate(self.store.get_sealed("manifest"))
        return KeyManifest.model_validate_json(signed.payload)

    def save_manifest(self, manifest: SignedManifest) -> None:
        """Store a manifest verified by the caller."""
        with self.store.transaction("manifest"):
            self.store.put_sealed("manifest", manifest.model_dump())

    # ------------------------------------------------------------------ pull

    @property
    def cursor(self) -> int:
        """The change-log position pulled so far."""
        (cursor,) = self.conn.execute("SELECT cursor FROM sync_state").fetchone()
        return int(cursor)

    def reset_cursor(self) -> None:
        """Pull everything again from the start (the views are kept and refreshed)."""
        with self.store.transaction("reset_cursor"):
            self.conn.execute("UPDATE sync_state SET cursor = 0")

    def apply_page(self, page: PullPage) -> None:
        """Apply a pulled page and advance the cursor, in one transaction."""
        with self.store.transaction("pull"):
            queued = self.pending_ids()
            for change in page.changes:
                state, _ = state_of_row(change)
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
            self.conn.execute("UPDATE sync_state SET last_sync_at = ?", (utcnow(),))

    def last_sync_at(self) -> dt.datetime | None:
        """When the last complete sync ended."""
        (text,) = self.conn.execute("SELECT last_sync_at FROM sync_state").fetchone()
        return dt.datetime.fromisoformat(text) if text else None
