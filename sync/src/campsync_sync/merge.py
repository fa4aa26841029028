"""Merge rules as pure functions (DESIGN.md section 4).

The state of a registry record is a join-semilattice: every scalar field keeps the write with
the highest HLC (ties, which only a cloned device can cause, break on the value's canonical
JSON); every set element keeps its highest-HLC add or remove; the tombstone and the restore
keep their highest HLC, and the record is deleted while its tombstone is later than its
restore. :func:`join` is therefore commutative, associative and idempotent, and applying any
permutation, duplication or regrouping of the same operations yields the same state.

What depends on arrival order is only the *classification* of each operation, reported in the
receipt: whether an edit fast-forwarded (its base was the server's current clock, or the
current value was written by the same device), merged silently, or clashed with a concurrent
edit of an identity field and opened a conflict record. A delete wins over concurrent edits,
which are kept in a conflict record; an edit of a deleted record is kept the same way and
never resurrects it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

from campsync_sync.fields import (
    DEFAULT_ENTITLEMENT_DAYS,
    DELETE_REASONS,
    REFERRAL_CATEGORIES,
    REFERRAL_STATUSES,
    REFERRAL_URGENCIES,
    SERVICES,
    VOID_REASONS,
    Entity,
    FieldError,
    identity_fields,
    validate_element,
    validate_field,
)
from campsync_sync.wire import (
    DeleteOp,
    FieldWrite,
    Operation,
    Outcome,
    PatchOp,
    ReferralOp,
    RejectReason,
    RestoreOp,
    RowState,
    ServiceOp,
    SetChange,
    SetElement,
    VoidOp,
)

__all__ = [
    "CONFLICT_NAMESPACE",
    "Conflict",
    "EventState",
    "Flag",
    "OpEffect",
    "RecordState",
    "Rejected",
    "apply_event_op",
    "apply_registry_op",
    "apply_void",
    "double_distribution",
    "event_state_of",
    "join",
    "normalize_operation",
    "record_state_from_row",
    "record_state_to_row",
]

_M = TypeVar("_M", FieldWrite, SetChange)

CONFLICT_NAMESPACE: Final = uuid.UUID("6f1c7a52-41d3-4c0e-9d4e-3f0b6c1d2e7a")
"""Namespace of the deterministic ids of conflict and flag records."""

_NODE = slice(16, 32)


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _wins(hlc: str, value: Any, other_hlc: str, other_value: Any) -> bool:
    """Whether (hlc, value) beats (other_hlc, other_value)."""
    if hlc != other_hlc:
        return hlc > other_hlc
    return _canon(value) > _canon(other_value)


@dataclass(slots=True)
class RecordState:
    """The merged state of one registry record.

    Attributes:
        values: scalar field values in their JSON form.
        clocks: scalar field -> HLC text of its current value.
        sets: set field -> element -> (present, HLC text).
        deleted: HLC of the latest delete, if any.
        restored: HLC of the latest restore, if any.
        erased: personal data was erased; the record accepts no more writes.
    """

    values: dict[str, Any] = field(default_factory=dict)
    clocks: dict[str, str] = field(default_factory=dict)
    sets: dict[str, dict[str, tuple[bool, str]]] = field(default_factory=dict)
    deleted: str | None = None
    restored: str | None = None
    erased: bool = False

    @property
    def is_deleted(self) -> bool:
        """Whether the record is currently a tombstone."""
        return self.deleted is not None and (self.restored is None or self.deleted > self.restored)

    def members(self, name: str) -> list[str]:
        """The elements currently present in set field ``name``, sorted."""
        return sorted(e for e, (present, _) in self.sets.get(name, {}).items() if present)

    def copy(self) -> RecordState:
        """A copy that can be changed without touching this one."""
        return RecordState(
            dict(self.values),
            dict(self.clocks),
            {name: dict(elements) for name, elements in self.sets.items()},
            self.deleted,
            self.restored,
            self.erased,
        )

    def max_clock(self) -> str | None:
        """The latest HLC anywhere in the record."""
        stamps = [*self.clocks.values(), self.deleted, self.restored]
        stamps += [hlc for elements in self.sets.values() for _, hlc in elements.values()]
        present = [s for s in stamps if s is not None]
        return max(present) if present else None


def _max_opt(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def join(a: RecordState, b: RecordState) -> RecordState:
    """The least upper bound of two states: what a replica holds after seeing both."""
    out = a.copy()
    for name, hlc in b.clocks.items():
        mine = out.clocks.get(name)
        if mine is None or _wins(hlc, b.values.get(name), mine, out.values.get(name)):
            out.clocks[name] = hlc
            out.values[name] = b.values.get(name)
    for name, elements in b.sets.items():
        target = out.sets.setdefault(name, {})
        for element, (present, hlc) in elements.items():
            current = target.get(element)
            if current is None or (hlc, present) > (current[1], current[0]):
                target[element] = (present, hlc)
    out.deleted = _max_opt(a.deleted, b.deleted)
    out.restored = _max_opt(a.restored, b.restored)
    out.erased = a.erased or b.erased
    return out


@dataclass(frozen=True, slots=True)
class Conflict:
    """A clash kept for coordinator review. Its id is deterministic: replays create no twin.

    ``kind`` is ``field`` (concurrent writes to an identity field), ``delete`` (a delete won
    over concurrent edits of ``fields``) or ``edit_on_deleted`` (an edit reached a tombstone).
    """

    id: uuid.UUID
    kind: Literal["field", "delete", "edit_on_deleted"]
    entity: Entity
    entity_id: uuid.UUID
    op_id: uuid.UUID
    field: str | None
    current_value: Any
    current_hlc: str | None
    incoming_value: Any
    incoming_hlc: str
    winner: Literal["current", "incoming"]
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Flag:
    """A data-quality flag, e.g. a possible double distribution. Deterministic id."""

    id: uuid.UUID
    kind: Literal["double_distribution", "clock_clamped"]
    entity: Entity
    entity_id: uuid.UUID
    related_ids: tuple[uuid.UUID, ...] = ()


@dataclass(slots=True)
class OpEffect:
    """What one operation did.

    Attributes:
        outcome: the receipt outcome.
        kind: create, update, delete, restore, event, void, or noop when nothing changed.
        changes: fields (and ``set:element`` keys) whose stored value changed, with the new
            value; what the history of the record shows.
        conflicts: conflict records to store.
        flags: flag records to store.
    """

    outcome: Outcome
    kind: Literal["create", "update", "delete", "restore", "event", "void", "noop"]
    changes: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)


class Rejected(Exception):
    """An operation is invalid; it goes to quarantine with ``reason`` and ``detail``."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _conflict_id(op_id: uuid.UUID, tag: str) -> uuid.UUID:
    return uuid.uuid5(CONFLICT_NAMESPACE, f"{op_id}:{tag}")


# --------------------------------------------------------------------------- validation


def normalize_operation(op: Operation) -> Operation:
    """Validate every value of an operation against the domain catalogue.

    Returns the operation with values in their normal form.

    Raises:
        Rejected: ``unknown_field`` or ``invalid_value``, with the field name as detail.
    """
    try:
        if isinstance(op, PatchOp):
            entity = Entity(op.entity)
            fields = {
                name: _normal(write, "value", validate_field(entity, name, write.value))
                for name, write in op.fields.items()
            }
            sets = {
                name: [
                    _normal(change, "element", validate_element(entity, name, change.element))
                    for change in changes
                ]
                for name, changes in op.sets.items()
            }
            if fields == op.fields and sets == op.sets:
                return op
            return op.model_copy(update={"fields": fields, "sets": sets})
        if isinstance(op, DeleteOp):
            _choose("reason", op.reason, DELETE_REASONS)
        elif isinstance(op, ServiceOp):
            _choose("service", op.service, SERVICES)
        elif isinstance(op, ReferralOp):
            _choose("category", op.category, REFERRAL_CATEGORIES)
            _choose("urgency", op.urgency, REFERRAL_URGENCIES)
            _choose("status", op.status, REFERRAL_STATUSES)
        elif isinstance(op, VoidOp):
            _choose("reason", op.reason, VOID_REASONS)
    except FieldError as exc:
        reason = RejectReason.UNKNOWN_FIELD if exc.reason == "unknown_field" else None
        raise Rejected(reason or RejectReason.INVALID_VALUE, f"{exc.field}: {exc.reason}") from None
    return op


def _normal(model: _M, name: str, value: Any) -> _M:
    # Copying a frozen model is costly; most values already are in their normal form.
    current = getattr(model, name)
    if value == current and type(value) is type(current):
        return model
    return model.model_copy(update={name: value})


def _choose(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise FieldError(name, "invalid_choice", f"must be one of {', '.join(options)}")


# --------------------------------------------------------------------------- registry


def _state_of_patch(op: PatchOp) -> RecordState:
    state = RecordState()
    for name, write in op.fields.items():
        state.values[name] = write.value
        state.clocks[name] = write.hlc
    for name, changes in op.sets.items():
        target = state.sets.setdefault(name, {})
        for change in changes:
            current = target.get(change.element)
            if current is None or (change.hlc, change.present) > (current[1], current[0]):
                target[change.element] = (change.present, change.hlc)
    return state


def _classify_write(
    entity: Entity,
    state: RecordState,
    name: str,
    write: FieldWrite,
    op_id: uuid.UUID,
    entity_id: uuid.UUID,
) -> tuple[Outcome, Conflict | None]:
    current = state.clocks.get(name)
    if current is None or current == write.hlc:
        return Outcome.APPLIED, None
    current_value = state.values.get(name)
    incoming_wins = _wins(write.hlc, write.value, current, current_value)
    # The writer saw the current value (its base), or wrote it itself: a plain overwrite.
    if write.base == current or current[_NODE] == write.hlc[_NODE]:
        return (Outcome.APPLIED if incoming_wins else Outcome.MERGED), None
    if name not in identity_fields(entity) or _canon(current_value) == _canon(write.value):
        return Outcome.MERGED, None
    conflict = Conflict(
        id=_conflict_id(op_id, name),
        kind="field",
        entity=entity,
        entity_id=entity_id,
        op_id=op_id,
        field=name,
        current_value=current_value,
        current_hlc=current,
        incoming_value=write.value,
        incoming_hlc=write.hlc,
        winner="incoming" if incoming_wins else "current",
    )
    return Outcome.CONFLICT, conflict


def _classify_change(state: RecordState, name: str, change: SetChange) -> Outcome:
    current = state.sets.get(name, {}).get(change.element)
    if current is None or (change.hlc, change.present) >= (current[1], current[0]):
        return Outcome.APPLIED
    return Outcome.MERGED


def _diff(before: RecordState, after: RecordState) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, hlc in after.clocks.items():
        if before.clocks.get(name) != hlc:
            changes[name] = after.values.get(name)
    for name, elements in after.sets.items():
        old = before.sets.get(name, {})
        for element, (present, hlc) in elements.items():
            if old.get(element) != (present, hlc):
                changes[f"{name}:{element}"] = present
    return changes


_RANK: Final = {
    Outcome.APPLIED: 0,
    Outcome.MERGED: 1,
    Outcome.FLAGGED: 2,
    Outcome.CONFLICT: 3,
}


def _worst(outcomes: Iterable[Outcome]) -> Outcome:
    return max(outcomes, key=_RANK.__getitem__, default=Outcome.APPLIED)


def apply_registry_op(
    entity: Entity,
    state: RecordState | None,
    op: PatchOp | DeleteOp | RestoreOp,
) -> tuple[RecordState, OpEffect]:
    """Apply one (normalised) registry operation to a record's state.

    ``state`` is ``None`` when the server holds no such record. The input state is not
    modified.

    Raises:
        Rejected: ``erased`` when the record's personal data was erased.
    """
    if state is not None and state.erased:
        raise Rejected(RejectReason.ERASED, "the record was erased")
    before = state if state is not None else RecordState()
    if isinstance(op, PatchOp):
        return _apply_patch(entity, state, before, op)
    if isinstance(op, DeleteOp):
        return _apply_delete(entity, state, before, op)
    after = join(before, RecordState(restored=op.hlc))
    kind: Literal["restore", "noop"] = "restore" if before.is_deleted else "noop"
    return after, OpEffect(Outcome.APPLIED, kind)


def _apply_patch(
    entity: Entity, state: RecordState | None, before: RecordState, op: PatchOp
) -> tuple[RecordState, OpEffect]:
    after = join(before, _state_of_patch(op))
    changes = _diff(before, after)
    if state is None:
        return after, OpEffect(Outcome.APPLIED, "create", changes)
    outcomes: list[Outcome] = []
    conflicts: list[Conflict] = []
    for name, write in op.fields.items():
        outcome, conflict = _classify_write(entity, before, name, write, op.op_id, op.id)
        outcomes.append(outcome)
        if conflict is not None:
            conflicts.append(conflict)
    for name, set_changes in op.sets.items():
        outcomes.extend(_classify_change(before, name, change) for change in set_changes)
    if before.is_deleted:
        conflicts = [
            Conflict(
                id=_conflict_id(op.op_id, "edit_on_deleted"),
                kind="edit_on_deleted",
                entity=entity,
                entity_id=op.id,
                op_id=op.op_id,
                field=None,
                current_value=None,
                current_hlc=before.deleted,
                incoming_value={name: w.value for name, w in op.fields.items()},
                incoming_hlc=_patch_max(op),
                winner="current",
                fields=tuple(sorted(op.fields)),
            )
        ]
        outcomes.append(Outcome.CONFLICT)
    kind: Literal["update", "noop"] = "update" if changes else "noop"
    return after, OpEffect(_worst(outcomes), kind, changes, conflicts)


def _patch_max(op: PatchOp) -> str:
    stamps = [w.hlc for w in op.fields.values()]
    stamps += [c.hlc for changes in op.sets.values() for c in changes]
    return max(stamps, default="0" * 32)


def _apply_delete(
    entity: Entity, state: RecordState | None, before: RecordState, op: DeleteOp
) -> tuple[RecordState, OpEffect]:
    after = join(before, RecordState(deleted=op.hlc))
    if before.is_deleted:
        return after, OpEffect(Outcome.APPLIED, "noop")
    node = op.hlc[_NODE]
    unseen = sorted(
        name
        for name, hlc in before.clocks.items()
        if op.base.get(name) != hlc and hlc[_NODE] != node
    )
    if state is None or not unseen:
        return after, OpEffect(Outcome.APPLIED, "delete", {"deleted": op.hlc})
    conflict = Conflict(
        id=_conflict_id(op.op_id, "delete"),
        kind="delete",
        entity=entity,
        entity_id=op.id,
        op_id=op.op_id,
        field=None,
        current_value={name: before.values.get(name) for name in unseen},
        current_hlc=max(before.clocks[name] for name in unseen),
        incoming_value=None,
        incoming_hlc=op.hlc,
        winner="incoming",
        fields=tuple(unseen),
    )
    return after, OpEffect(Outcome.CONFLICT, "delete", {"deleted": op.hlc}, [conflict])


def record_state_to_row(
    entity: Entity, record_id: uuid.UUID, seq: int, state: RecordState
) -> RowState:
    """The wire form of a record's state, as sent in a pull page."""
    return RowState(
        entity=entity,
        id=record_id,
        seq=seq,
        values=dict(state.values),
        clocks=dict(state.clocks),
        sets={
            name: {e: SetElement(present=p, hlc=h) for e, (p, h) in elements.items()}
            for name, elements in state.sets.items()
        },
        deleted=state.deleted,
        restored=state.restored,
        erased=state.erased,
    )


def record_state_from_row(row: RowState) -> RecordState:
    """Inverse of :func:`record_state_to_row`."""
    return RecordState(
        values=dict(row.values),
        clocks=dict(row.clocks),
        sets={
            name: {e: (s.present, s.hlc) for e, s in elements.items()}
            for name, elements in row.sets.items()
        },
        deleted=row.deleted,
        restored=row.restored,
        erased=row.erased,
    )


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class EventState:
    """A stored event: its values (as sent), its clock, and its void mark if any."""

    entity: Entity
    id: uuid.UUID
    values: Mapping[str, Any]
    hlc: str
    voided: str | None = None
    void_reason: str | None = None


def event_state_of(op: ServiceOp | ReferralOp) -> EventState:
    """The state an event operation creates."""
    values = op.model_dump(mode="json", exclude={"op", "op_id", "id", "hlc"})
    entity = Entity.SERVICE_DELIVERY if isinstance(op, ServiceOp) else Entity.REFERRAL
    return EventState(entity, op.id, values, op.hlc)


def apply_event_op(
    existing: EventState | None, op: ServiceOp | ReferralOp
) -> tuple[EventState, OpEffect]:
    """Insert an event; the same event again is a no-op.

    Raises:
        Rejected: ``id_reused`` when the id is taken by an event with other content.
    """
    new = event_state_of(op)
    if existing is None:
        return new, OpEffect(Outcome.APPLIED, "event", dict(new.values))
    if existing.entity != new.entity or _canon(existing.values) != _canon(new.values):
        raise Rejected(RejectReason.ID_REUSED, "event id already holds another event")
    return existing, OpEffect(Outcome.APPLIED, "noop")


def apply_void(existing: EventState | None, op: VoidOp) -> tuple[EventState, OpEffect]:
    """Mark an event void. The earliest void wins, so the result is order-independent.

    Raises:
        Rejected: ``unknown_target`` when no such event exists.
    """
    if existing is None or existing.entity != op.entity:
        raise Rejected(RejectReason.UNKNOWN_TARGET, "no such event to void")
    if existing.voided is not None and existing.voided <= op.hlc:
        return existing, OpEffect(Outcome.APPLIED, "noop")
    voided = EventState(
        existing.entity, existing.id, existing.values, existing.hlc, op.hlc, op.reason
    )
    return voided, OpEffect(Outcome.APPLIED, "void", {"voided": op.hlc, "void_reason": op.reason})


def double_distribution(
    new: ServiceOp,
    prior: Sequence[EventState],
    *,
    windows: Mapping[str, int] = DEFAULT_ENTITLEMENT_DAYS,
) -> Flag | None:
    """Flag a delivery of a service the household already received inside its window.

    ``prior`` are the household's stored deliveries (the server loads those of the same
    service within the window); voided deliveries and the event itself are ignored.
    """
    days = windows.get(new.service)
    if not days:
        return None
    window = dt.timedelta(days=days)
    related = sorted(
        p.id
        for p in prior
        if p.id != new.id
        and p.voided is None
        and p.values.get("service") == new.service
        and str(p.values.get("household_id")) == str(new.household_id)
        and abs(dt.datetime.fromisoformat(str(p.values["delivered_at"])) - new.delivered_at)
        < window
    )
    if not related:
        return None
    return Flag(
        id=_conflict_id(new.id, "double_distribution"),
        kind="double_distribution",
        entity=Entity.SERVICE_DELIVERY,
        entity_id=new.id,
        related_ids=tuple(related),
    )
