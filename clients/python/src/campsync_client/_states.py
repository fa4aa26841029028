"""Record states as the tablet keeps them, and this tablet's own operations applied to them.

A registry record's state is the protocol's ``RecordState`` (values, per-field clocks, set
elements, tombstone); an event's is its ``EventState``. Both are stored as JSON, sealed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from campsync_sync import (
    REGISTRY_ENTITIES,
    DeleteOp,
    Entity,
    EventState,
    Operation,
    PatchOp,
    RecordState,
    ReferralOp,
    Rejected,
    RestoreOp,
    RowState,
    ServiceOp,
    apply_registry_op,
    apply_void,
    event_state_of,
    record_state_from_row,
)

__all__ = [
    "Row",
    "State",
    "apply_own",
    "dump_state",
    "is_live",
    "load_state",
    "state_of_row",
    "target_of",
]

State = RecordState | EventState


def dump_state(state: State) -> dict[str, Any]:
    """The stored (JSON) form of a state."""
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


def load_state(entity: Entity, record_id: uuid.UUID, data: dict[str, Any]) -> State:
    """Inverse of :func:`dump_state`."""
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


def state_of_row(row: RowState) -> tuple[State, bool]:
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


def target_of(op: Operation) -> tuple[Entity, uuid.UUID]:
    """The record an operation writes."""
    if isinstance(op, ServiceOp):
        return Entity.SERVICE_DELIVERY, op.id
    if isinstance(op, ReferralOp):
        return Entity.REFERRAL, op.id
    return Entity(op.entity), op.id


def apply_own(entity: Entity, state: State | None, op: Operation) -> State | None:
    """Apply one of this tablet's operations to a view, by the protocol's rules."""
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


def is_live(state: State | None) -> bool:
    """Whether a record is shown: not deleted, not erased."""
    if isinstance(state, RecordState):
        return not (state.is_deleted or state.erased)
    return state is not None


@dataclass(slots=True)
class Row:
    """One record: the server's state (``base``) and the local view while edits are queued."""

    entity: Entity
    id: uuid.UUID
    base: State | None
    local: State | None

    @property
    def view(self) -> State | None:
        """What the operator sees."""
        return self.local if self.local is not None else self.base
