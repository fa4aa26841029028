"""Merge rules as pure functions (DESIGN.md section 4).

The state of a registry record is a join-semilattice: every scalar field keeps the write with
the highest HLC (ties, which only a cloned device can cause, break on the value's canonical
JSON); every set element keeps its highest ``(hlc, present)`` pair; the tombstone and the
restore keep their highest HLC, and the record is deleted while its tombstone is later than its
restore. Erasure absorbs everything: an erased state keeps only its tombstone clocks. So
:func:`join` is commutative, associative and idempotent, ``apply_registry_op(s, op)`` holds
``join(s, op_state(op))``, and any permutation, duplication or regrouping of the same
operations yields the same state.

What depends on arrival order is only the *classification* of each operation, reported in the
receipt: whether an edit fast-forwarded (its base was the server's current clock, or the
current value was written by the same device), merged silently, or clashed with a concurrent
edit of an identity field and opened a conflict record. A delete wins over concurrent edits,
which are kept in a conflict record; an edit of a deleted record is kept the same way and
never resurrects it.

States are values: the functions here never change the states they are given, and callers
should not change the states they get back in place (unchanged set fields are shared).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Literal

# The events, operations and outcomes modules were split out of this one; their names stay
# importable from here, where the first integrations found them.
from campsync_sync.events import (
    EventState,
    apply_event_op,
    apply_void,
    double_distribution,
    event_state_of,
)
from campsync_sync.fields import Entity, identity_fields
from campsync_sync.operations import normalize_operation, read_operation
from campsync_sync.outcomes import (
    CONFLICT_NAMESPACE,
    Conflict,
    Flag,
    OpEffect,
    Rejected,
    canonical_json,
    conflict_id,
)
from campsync_sync.wire import (
    DeleteOp,
    Operation,
    Outcome,
    PatchOp,
    RejectReason,
    RestoreOp,
    RowState,
    SetElement,
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
    "latest_clock",
    "normalize_operation",
    "op_state",
    "read_operation",
    "record_state_from_row",
    "record_state_to_row",
]

_NODE: Final = slice(16, 32)
"""The node id inside an HLC's text form."""


def _wins(hlc: str, value: Any, other_hlc: str, other_value: Any) -> bool:
    """Whether (hlc, value) beats (other_hlc, other_value)."""
    if hlc != other_hlc:
        return hlc > other_hlc
    return canonical_json(value) > canonical_json(other_value)


@dataclass(slots=True)
class RecordState:
    """The merged state of one registry record.

    Attributes:
        values: scalar field values in their JSON form.
        clocks: scalar field -> HLC text of its current value.
        sets: set field -> element -> (present, HLC text).
        deleted: HLC of the latest delete, if any.
        restored: HLC of the latest restore, if any.
        erased: personal data was erased; the state keeps no values and accepts no writes.
    """

    values: dict[str, Any] = field(default_factory=dict)
    clocks: dict[str, str] = field(default_factory=dict)
    sets: dict[str, dict[str, tuple[bool, str]]] = field(default_factory=dict)
    deleted: str | None = None
    restored: str | None = None
    erased: bool = False

    @property
    def is_deleted(self) -> bool:
        """Whether the record is currently a tombstone (an erased record always is)."""
        if self.erased:
            return True
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

    def seen(self) -> dict[str, str]:
        """The clocks a tablet sends as a delete's ``base``: every field and set element.

        Set elements are keyed ``"field:element"``; anything the server holds with another
        clock was edited concurrently and is kept in a conflict record.
        """
        seen = dict(self.clocks)
        for name, elements in self.sets.items():
            for element, (_, hlc) in elements.items():
                seen[f"{name}:{element}"] = hlc
        return seen


_EMPTY: Final = RecordState()
"""The state of a record nobody has written; never changed."""


def _max_opt(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def join(a: RecordState, b: RecordState) -> RecordState:
    """The least upper bound of two states: what a replica holds after seeing both."""
    deleted, restored = _max_opt(a.deleted, b.deleted), _max_opt(a.restored, b.restored)
    if a.erased or b.erased:
        # An erased record is an id-only tombstone forever: a replica that still holds the
        # personal data drops it on joining, and no older write can bring it back.
        return RecordState(deleted=deleted, restored=restored, erased=True)
    out = RecordState(dict(a.values), dict(a.clocks), dict(a.sets), deleted, restored)
    for name, hlc in b.clocks.items():
        mine = out.clocks.get(name)
        if mine is None or _wins(hlc, b.values.get(name), mine, out.values.get(name)):
            out.clocks[name] = hlc
            out.values[name] = b.values.get(name)
    for name, elements in b.sets.items():
        target = dict(out.sets.get(name, {}))
        for element, (present, hlc) in elements.items():
            current = target.get(element)
            if current is None or (hlc, present) > (current[1], current[0]):
                target[element] = (present, hlc)
        out.sets[name] = target
    return out


# --------------------------------------------------------------------------- registry

_APPLIED, _MERGED, _CONFLICT = 0, 1, 2
_OUTCOMES: Final = (Outcome.APPLIED, Outcome.MERGED, Outcome.CONFLICT)


def op_state(op: PatchOp | DeleteOp | RestoreOp) -> RecordState:
    """The state a registry operation denotes on its own.

    ``apply_registry_op(entity, s, op)[0] == join(s, op_state(op))`` for every state ``s``
    that is not erased: a client can fold its pending operations into a pulled state with it.
    """
    if isinstance(op, DeleteOp):
        return RecordState(deleted=op.hlc)
    if isinstance(op, RestoreOp):
        return RecordState(restored=op.hlc)
    return _apply_patch(Entity(op.entity), None, op)[0]


def apply_registry_op(
    entity: Entity,
    state: RecordState | None,
    op: PatchOp | DeleteOp | RestoreOp,
) -> tuple[RecordState, OpEffect]:
    """Apply one (normalised) registry operation to a record's state.

    ``state`` is ``None`` when the server holds no such record. The input state is not
    modified. This is the server's per-operation hot path, so it merges and classifies in
    one pass instead of building and diffing intermediate states.

    Raises:
        Rejected: ``erased`` when the record's personal data was erased.
    """
    if state is not None and state.erased:
        raise Rejected(RejectReason.ERASED, "the record was erased")
    if isinstance(op, PatchOp):
        return _apply_patch(entity, state, op)
    if isinstance(op, DeleteOp):
        return _apply_delete(entity, state, op)
    return _apply_restore(state, op)


def _apply_patch(
    entity: Entity, state: RecordState | None, op: PatchOp
) -> tuple[RecordState, OpEffect]:
    before = _EMPTY if state is None else state
    values, clocks, sets = dict(before.values), dict(before.clocks), dict(before.sets)
    changes: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    rank = _APPLIED
    fresh = False  # the operation holds something the state does not hold already
    identity = identity_fields(entity)
    for name, write in op.fields.items():
        hlc, value = write.hlc, write.value
        current = clocks.get(name)
        if current is None:
            values[name] = value
            clocks[name] = hlc
            changes[name] = value
            fresh = True
            continue
        current_value = values.get(name)
        if hlc == current:
            incoming, existing = canonical_json(value), canonical_json(current_value)
            if incoming == existing:
                continue  # a replay
            wins = incoming > existing
        else:
            wins = hlc > current
        fresh = True
        if wins:
            values[name] = value
            clocks[name] = hlc
            changes[name] = value
        if write.base == current or current[_NODE] == hlc[_NODE]:
            # The writer saw the current value, or wrote it itself: a plain overwrite.
            if not wins:
                rank = max(rank, _MERGED)
        elif name not in identity or canonical_json(value) == canonical_json(current_value):
            rank = max(rank, _MERGED)
        else:
            rank = _CONFLICT
            conflicts.append(
                Conflict(
                    id=conflict_id(op.op_id, name),
                    kind="field",
                    entity=entity,
                    entity_id=op.id,
                    op_id=op.op_id,
                    field=name,
                    current_value=current_value,
                    current_hlc=current,
                    incoming_value=value,
                    incoming_hlc=hlc,
                    winner="incoming" if wins else "current",
                )
            )
    for name, set_changes in op.sets.items():
        target = sets.get(name)
        owned: dict[str, tuple[bool, str]] | None = None  # copied on first write
        for change in set_changes:
            element, incoming_key = change.element, (change.hlc, change.present)
            held = None if target is None else target.get(element)
            if held is not None:
                held_key = (held[1], held[0])
                if incoming_key == held_key:
                    continue  # a replay
                fresh = True
                if incoming_key < held_key:
                    rank = max(rank, _MERGED)
                    continue
            fresh = True
            if owned is None:
                owned = target = sets[name] = {} if target is None else dict(target)
            owned[element] = (change.present, change.hlc)
            changes[f"{name}:{element}"] = change.present
    if before.is_deleted and fresh:
        lost: dict[str, Any] = {name: w.value for name, w in op.fields.items()}
        lost.update({f"{n}:{c.element}": c.present for n, cs in op.sets.items() for c in cs})
        conflicts = [
            Conflict(
                id=conflict_id(op.op_id, "edit_on_deleted"),
                kind="edit_on_deleted",
                entity=entity,
                entity_id=op.id,
                op_id=op.op_id,
                field=None,
                current_value=None,
                current_hlc=before.deleted,
                incoming_value=lost,
                incoming_hlc=latest_clock(op),
                winner="current",
                fields=tuple(sorted(lost)),
            )
        ]
        rank = _CONFLICT
    after = RecordState(values, clocks, sets, before.deleted, before.restored)
    kind: Literal["create", "update", "noop"] = (
        "create" if state is None else "update" if changes else "noop"
    )
    return after, OpEffect(_OUTCOMES[rank], kind, changes, conflicts)


def latest_clock(op: Operation) -> str:
    """The latest HLC an operation carries: a patch's latest field or set-element clock."""
    if not isinstance(op, PatchOp):
        return op.hlc
    stamps = [w.hlc for w in op.fields.values()]
    for changes in op.sets.values():
        stamps += [c.hlc for c in changes]
    return max(stamps, default="0" * 32)


def _apply_delete(
    entity: Entity, state: RecordState | None, op: DeleteOp
) -> tuple[RecordState, OpEffect]:
    before = _EMPTY if state is None else state
    deleted = _max_opt(before.deleted, op.hlc)
    after = RecordState(
        dict(before.values), dict(before.clocks), dict(before.sets), deleted, before.restored
    )
    if before.is_deleted:
        return after, OpEffect(Outcome.APPLIED, "noop")
    if not after.is_deleted:
        return after, OpEffect(Outcome.MERGED, "noop")  # a later restore wins
    # What the deleting device had not seen was edited concurrently: keep it for review.
    node, base = op.hlc[_NODE], op.base
    unseen: dict[str, tuple[Any, str]] = {
        name: (before.values.get(name), hlc)
        for name, hlc in before.clocks.items()
        if base.get(name) != hlc and hlc[_NODE] != node
    }
    for name, elements in before.sets.items():
        for element, (present, hlc) in elements.items():
            key = f"{name}:{element}"
            if base.get(key) != hlc and hlc[_NODE] != node:
                unseen[key] = (present, hlc)
    changes = {"deleted": op.hlc}
    if not unseen:
        return after, OpEffect(Outcome.APPLIED, "delete", changes)
    conflict = Conflict(
        id=conflict_id(op.op_id, "delete"),
        kind="delete",
        entity=entity,
        entity_id=op.id,
        op_id=op.op_id,
        field=None,
        current_value={key: value for key, (value, _) in sorted(unseen.items())},
        current_hlc=max(hlc for _, hlc in unseen.values()),
        incoming_value=None,
        incoming_hlc=op.hlc,
        winner="incoming",
        fields=tuple(sorted(unseen)),
    )
    return after, OpEffect(Outcome.CONFLICT, "delete", changes, [conflict])


def _apply_restore(state: RecordState | None, op: RestoreOp) -> tuple[RecordState, OpEffect]:
    before = _EMPTY if state is None else state
    restored = _max_opt(before.restored, op.hlc)
    after = RecordState(
        dict(before.values), dict(before.clocks), dict(before.sets), before.deleted, restored
    )
    if not before.is_deleted:
        return after, OpEffect(Outcome.APPLIED, "noop")
    if after.is_deleted:
        return after, OpEffect(Outcome.MERGED, "noop")  # a later delete wins
    return after, OpEffect(Outcome.APPLIED, "restore", {"restored": op.hlc})


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
