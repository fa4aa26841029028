"""Merge one batch of operations into the registry, in the caller's transaction.

The shape is fixed by the performance budget (DESIGN.md section 8): validate every operation
before the transaction; inside it, load every row the batch touches with one query per table
(row locks in id order on PostgreSQL), merge in memory with ``campsync_sync``'s pure rules,
and write with one bulk statement per table. An invalid operation is rejected in the receipt
and quarantined; it never blocks the rest of its batch.

On SQLite, where writers take turns, :meth:`BatchMerger.merge` first runs in a read snapshot
and only :meth:`BatchMerger.write` in the writer's turn, unless the change log shows that
something the merge read changed in between (``api.sync.service._draft``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from campsync_sync import (
    Batch,
    DeleteOp,
    Entity,
    EventState,
    Operation,
    Outcome,
    PatchOp,
    ReferralOp,
    Rejected,
    RejectReason,
    RestoreOp,
    ServiceOp,
    VoidOp,
    apply_event_op,
    apply_registry_op,
    apply_void,
    double_distribution,
)
from campsync_sync.fields import DEFAULT_ENTITLEMENT_DAYS
from campsync_sync.merge import CONFLICT_NAMESPACE
from sqlalchemy import select
from sqlmodel import Session, col

from api.devices.models import Device
from api.registry import bulk, store
from api.registry.models import Conflict, Flag
from api.sync.models import Quarantine
from api.sync.prepare import Prepared

_RANK: Final = {
    Outcome.APPLIED: 0,
    Outcome.MERGED: 1,
    Outcome.FLAGGED: 2,
    Outcome.CONFLICT: 3,
    Outcome.REJECTED: 4,
}
_REGISTRY_OPS: Final = (PatchOp, DeleteOp, RestoreOp)
_EVENT_OPS: Final = (ServiceOp, ReferralOp)
"""Tuples, not ``X | Y`` unions: a union is built anew at every evaluation, per operation."""
_ENTITY: Final = {entity.value: entity for entity in Entity}
"""An operation's entity name to its Entity: one dict lookup, a twentieth of ``Entity(name)``."""
_MAX_WINDOW: Final = dt.timedelta(days=max(DEFAULT_ENTITLEMENT_DAYS.values()))
_CONFLICT_TABLE: Final = Conflict.__table__  # type: ignore[attr-defined]
_FLAG_TABLE: Final = Flag.__table__  # type: ignore[attr-defined]
_QUARANTINE_TABLE: Final = Quarantine.__table__  # type: ignore[attr-defined]


OpResultData = dict[str, Any]
"""An :class:`OpResult`'s fields: the receipt validates a batch's 500 at once, in one call
to pydantic, for three quarters of the cost of building them one by one."""


@dataclass(slots=True)
class MergeResult:
    results: list[OpResultData]
    changes: list[store.Change]
    max_hlc: str | None
    counts: dict[str, int] = field(default_factory=dict)


class _Scope:
    """What the transaction loaded, and what the batch created so far."""

    def __init__(self, session: Session, device: Device, prepared: list[Prepared]) -> None:
        households: set[uuid.UUID] = set()
        persons: set[uuid.UUID] = set()
        events: dict[Entity, set[uuid.UUID]] = {
            Entity.SERVICE_DELIVERY: set(),
            Entity.REFERRAL: set(),
        }
        delivered: list[ServiceOp] = []
        for item in prepared:
            op = item.op
            if isinstance(op, _REGISTRY_OPS):
                (households if op.entity == "household" else persons).add(op.id)
                if isinstance(op, PatchOp) and "household_id" in op.fields:
                    value = op.fields["household_id"].value
                    if value is not None:
                        households.add(store.as_uuid(str(value)))
            elif isinstance(op, _EVENT_OPS):
                households.add(op.household_id)
                if op.person_id is not None:
                    persons.add(op.person_id)
                entity = Entity.SERVICE_DELIVERY if isinstance(op, ServiceOp) else Entity.REFERRAL
                events[entity].add(op.id)
                if isinstance(op, ServiceOp) and op.service in DEFAULT_ENTITLEMENT_DAYS:
                    delivered.append(op)
            elif isinstance(op, VoidOp):
                events[Entity(op.entity)].add(op.id)
        # Lock order is fixed (households, persons, events; ids ascending in each), so two
        # merges touching the same rows wait for each other instead of deadlocking.
        self.registry = {
            Entity.HOUSEHOLD: store.load_registry(session, Entity.HOUSEHOLD, households, lock=True),
            Entity.PERSON: store.load_registry(session, Entity.PERSON, persons, lock=True),
        }
        self.events = {
            entity: store.load_events(session, entity, ids, lock=True)
            for entity, ids in events.items()
        }
        self.looked_up: set[uuid.UUID] = households | persons | set().union(*events.values())
        self.prior: dict[tuple[uuid.UUID, str], list[EventState]] = {}
        self.prior_loaded = bool(delivered)
        if delivered:
            times = [op.delivered_at for op in delivered]
            for state in store.load_prior_deliveries(
                session,
                {op.household_id for op in delivered},
                {op.service for op in delivered},
                since=min(times) - _MAX_WINDOW,
                until=max(times) + _MAX_WINDOW,
            ):
                household = store.as_uuid(str(state.values["household_id"]))
                key = (household, str(state.values["service"]))
                self.prior.setdefault(key, []).append(state)
        self.camp = device.camp_id

    def household_in_scope(self, household_id: uuid.UUID) -> None:
        record = self.registry[Entity.HOUSEHOLD].get(household_id)
        if record is None:
            raise Rejected(RejectReason.UNKNOWN_HOUSEHOLD, "household_id")
        if record.camp_id != self.camp:
            raise Rejected(RejectReason.OUT_OF_SCOPE, "household_id")

    def person_in_scope(self, person_id: uuid.UUID) -> None:
        record = self.registry[Entity.PERSON].get(person_id)
        if record is None:
            raise Rejected(RejectReason.UNKNOWN_TARGET, "person_id")
        if record.camp_id != self.camp:
            raise Rejected(RejectReason.OUT_OF_SCOPE, "person_id")


class BatchMerger:
    """Applies the prepared operations of one batch to the loaded rows, in batch order."""

    def __init__(
        self,
        session: Session,
        *,
        device: Device,
        batch: Batch,
        prepared: list[Prepared],
        now: dt.datetime,
    ) -> None:
        self.session = session
        self.device = device
        self.batch = batch
        self.prepared = prepared
        self.now = now
        self.scope = _Scope(session, device, prepared)
        self.dirty: dict[Entity, set[uuid.UUID]] = {e: set() for e in Entity}
        self.changes: list[store.Change] = []
        self.conflicts: list[dict[str, Any]] = []
        self.flags: list[dict[str, Any]] = []
        self.quarantine: list[dict[str, Any]] = []
        self.results: list[OpResultData] = []
        self.max_hlc: str | None = None

    # -- per operation

    def _stamp(self, hlc: str | None) -> None:
        if hlc is not None and (self.max_hlc is None or hlc > self.max_hlc):
            self.max_hlc = hlc

    def _change(self, entity: Entity, entity_id: uuid.UUID, op: Operation, **kw: Any) -> None:
        self.changes.append(
            store.Change(
                camp_id=self.scope.camp,
                entity=entity,
                entity_id=entity_id,
                op_id=op.op_id,
                batch_id=self.batch.batch_id,
                device_id=self.device.id,
                actor=self.batch.operator,
                **kw,
            )
        )

    def _registry(self, op: PatchOp | DeleteOp | RestoreOp, hlc: str) -> tuple[Outcome, list[Any]]:
        entity = _ENTITY[op.entity]
        records = self.scope.registry[entity]
        record = records.get(op.id)
        if record is not None and record.camp_id != self.scope.camp:
            raise Rejected(RejectReason.OUT_OF_SCOPE, "id")
        if entity is Entity.PERSON and isinstance(op, PatchOp):
            write = op.fields.get("household_id")
            if write is not None and write.value is not None:
                self.scope.household_in_scope(store.as_uuid(str(write.value)))
            elif record is None:
                raise Rejected(RejectReason.UNKNOWN_HOUSEHOLD, "household_id: required")
        if record is None and isinstance(op, RestoreOp):
            raise Rejected(RejectReason.UNKNOWN_TARGET, "no such record to restore")
        state, effect = apply_registry_op(entity, record.state if record else None, op)
        if record is None:
            records[op.id] = store.StoredRecord(
                self.scope.camp, state, created_by_device=self.device.id
            )
        else:
            record.state = state
        if effect.kind != "noop":
            self.dirty[entity].add(op.id)
            self._stamp(hlc)
            self._change(entity, op.id, op, kind=effect.kind, hlc=hlc, changes=effect.changes)
        return effect.outcome, effect.conflicts

    def _event(self, op: ServiceOp | ReferralOp) -> tuple[Outcome, list[uuid.UUID]]:
        self.scope.household_in_scope(op.household_id)
        if op.person_id is not None:
            self.scope.person_in_scope(op.person_id)
        entity = Entity.SERVICE_DELIVERY if isinstance(op, ServiceOp) else Entity.REFERRAL
        events = self.scope.events[entity]
        existing = events.get(op.id)
        if existing is not None and existing.camp_id != self.scope.camp:
            raise Rejected(RejectReason.OUT_OF_SCOPE, "id")
        state, effect = apply_event_op(existing.state if existing else None, op)
        if effect.kind == "noop":
            return effect.outcome, []
        events[op.id] = store.StoredEvent(self.scope.camp, state)
        self.dirty[entity].add(op.id)
        self._stamp(op.hlc)
        self._change(entity, op.id, op, kind="event", hlc=op.hlc, changes=effect.changes)
        if not isinstance(op, ServiceOp):
            return effect.outcome, []
        prior = self.scope.prior.setdefault((op.household_id, op.service), [])
        flag = double_distribution(op, prior)
        prior.append(state)
        if flag is None:
            return effect.outcome, []
        self.flags.append(
            self._flag_row(
                flag.id,
                "double_distribution",
                entity,
                op.id,
                op.household_id,
                {"service": op.service, "related_ids": [str(i) for i in flag.related_ids]},
            )
        )
        return Outcome.FLAGGED, [flag.id]

    def _void(self, op: VoidOp) -> Outcome:
        entity = _ENTITY[op.entity]
        events = self.scope.events[entity]
        existing = events.get(op.id)
        if existing is not None and existing.camp_id != self.scope.camp:
            raise Rejected(RejectReason.OUT_OF_SCOPE, "id")
        state, effect = apply_void(existing.state if existing else None, op)
        if effect.kind != "noop" and existing is not None:
            existing.state = state
            self.dirty[entity].add(op.id)
            self._stamp(op.hlc)
            self._change(entity, op.id, op, kind="void", hlc=op.hlc, changes=effect.changes)
        return effect.outcome

    def _flag_row(
        self,
        flag_id: uuid.UUID,
        kind: str,
        entity: Entity,
        entity_id: uuid.UUID,
        household_id: uuid.UUID | None,
        details: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "id": flag_id,
            "camp_id": self.scope.camp,
            "kind": kind,
            "entity": entity.value,
            "entity_id": entity_id,
            "household_id": household_id,
            "device_id": self.device.id,
            "batch_id": self.batch.batch_id,
            "details": details,
            "status": "open",
            "created_at": self.now,
        }

    def _apply(self, item: Prepared) -> OpResultData:
        op = item.op
        assert op is not None  # noqa: S101 - rejected items never get here
        conflict_ids: list[uuid.UUID] = []
        flag_ids: list[uuid.UUID] = []
        if isinstance(op, _REGISTRY_OPS):
            outcome, conflicts = self._registry(op, item.hlc)
            for conflict in conflicts:
                self.conflicts.append(self._conflict_row(conflict))
                conflict_ids.append(conflict.id)
        elif isinstance(op, _EVENT_OPS):
            outcome, flag_ids = self._event(op)
        else:
            outcome = self._void(op)
        if item.clamped:
            entity = Entity(getattr(op, "entity", None) or _event_entity(op))
            flag_id = uuid.uuid5(CONFLICT_NAMESPACE, f"{op.op_id}:clock_clamped")
            household = getattr(op, "household_id", None)
            self.flags.append(
                self._flag_row(flag_id, "clock_clamped", entity, op.id, household, {})
            )
            flag_ids.append(flag_id)
            if _RANK[outcome] < _RANK[Outcome.FLAGGED]:
                outcome = Outcome.FLAGGED
        result: OpResultData = {"index": item.index, "op_id": op.op_id, "outcome": outcome}
        if conflict_ids:
            result["conflict_ids"] = conflict_ids
        if flag_ids:
            result["flag_ids"] = flag_ids
        return result

    def _conflict_row(self, conflict: Any) -> dict[str, Any]:
        return {
            "id": conflict.id,
            "camp_id": self.scope.camp,
            "kind": conflict.kind,
            "entity": conflict.entity.value,
            "entity_id": conflict.entity_id,
            "field": conflict.field,
            "fields": list(conflict.fields),
            "current_value": conflict.current_value,
            "current_hlc": conflict.current_hlc,
            "current_device_id": None,  # filled from the HLC's node in _resolve_devices
            "incoming_value": conflict.incoming_value,
            "incoming_hlc": conflict.incoming_hlc,
            "incoming_device_id": self.device.id,
            "incoming_operator": self.batch.operator,
            "op_id": conflict.op_id,
            "batch_id": self.batch.batch_id,
            "winner": conflict.winner,
            "status": "open",
            "created_at": self.now,
        }

    def _reject(self, item: Prepared, rejected: Rejected) -> OpResultData:
        self.quarantine.append(
            {
                "id": uuid.uuid4(),
                "device_id": self.device.id,
                "batch_id": self.batch.batch_id,
                "op_index": item.index,
                "op_id": item.op_id,
                "reason": rejected.reason.value,
                "detail": rejected.detail[:200],
                "payload": orjson.dumps(
                    item.raw if isinstance(item.raw, dict) else item.raw.model_dump(mode="json")
                ),
                "created_at": self.now,
            }
        )
        return {
            "index": item.index,
            "op_id": item.op_id,
            "outcome": Outcome.REJECTED,
            "reason": rejected.reason,
            "detail": rejected.detail[:200],
        }

    # -- the batch

    def run(self) -> MergeResult:
        """Merge, then write, in the session's transaction."""
        self.merge()
        return self.write(self.session, self.now)

    def merge(self) -> None:
        """Merge every operation into the loaded rows, in memory: no SQL."""
        for item in self.prepared:
            if item.rejected is not None:
                self.results.append(self._reject(item, item.rejected))
                continue
            try:
                self.results.append(self._apply(item))
            except Rejected as exc:
                self.results.append(self._reject(item, exc))

    def write(self, session: Session, now: dt.datetime) -> MergeResult:
        """Write what :meth:`merge` decided, in ``session``'s transaction.

        Records and events are stamped ``now``: for a merge drafted earlier, the time of the
        write rather than of the draft, so ``updated_at`` stays close to commit order.
        """
        self.session = session
        self.now = now
        self._write()
        counts = Counter(r["outcome"].value for r in self.results)
        return MergeResult(self.results, self.changes, self.max_hlc, dict(counts))

    def read_since(self, session: Session, seq: int) -> bool:
        """Whether a transaction committed after ``seq`` changed anything this merge read.

        Every write of a registry record or an event appends to the change log under a new
        commit seq (:mod:`api.registry.store`), so the log says which of the ids this merge
        looked up (found or not) changed since. Deliveries to other records can make a
        delivery of this batch a double distribution: any new delivery in the camp counts.
        """
        return store.changed_since(
            session,
            seq,
            self.scope.looked_up,
            deliveries_in=self.scope.camp if self.scope.prior_loaded else None,
        )

    def _resolve_devices(self) -> None:
        nodes = {c["current_hlc"][16:] for c in self.conflicts if c["current_hlc"]}
        if not nodes:
            return
        by_node = dict(
            self.session.execute(
                select(col(Device.node), col(Device.id)).where(col(Device.node).in_(sorted(nodes)))
            ).all()
        )
        for conflict in self.conflicts:
            if conflict["current_hlc"]:
                conflict["current_device_id"] = by_node.get(conflict["current_hlc"][16:])

    def _write(self) -> None:
        for entity in (Entity.HOUSEHOLD, Entity.PERSON):
            records = self.scope.registry[entity]
            store.save_registry(
                self.session,
                entity,
                [
                    store.registry_row(entity, rid, records[rid], now=self.now)
                    for rid in store.sorted_ids(self.dirty[entity])
                ],
            )
        for entity in (Entity.SERVICE_DELIVERY, Entity.REFERRAL):
            events = self.scope.events[entity]
            store.save_events(
                self.session,
                entity,
                [
                    store.event_row(
                        events[eid].state,
                        camp_id=events[eid].camp_id,
                        device_id=self.device.id,
                        operator=self.batch.operator,
                        batch_id=self.batch.batch_id,
                        now=self.now,
                    )
                    for eid in store.sorted_ids(self.dirty[entity])
                ],
            )
        self._resolve_devices()
        store.insert_ignoring_duplicates(self.session, _CONFLICT_TABLE, self.conflicts)
        store.insert_ignoring_duplicates(self.session, _FLAG_TABLE, self.flags)
        if self.quarantine:
            bulk.write(self.session, _QUARANTINE_TABLE, self.quarantine)


def _event_entity(op: Operation) -> str:
    return "service_delivery" if isinstance(op, ServiceOp) else "referral"
