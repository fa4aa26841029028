"""Events: insert-only, idempotent by id, voided rather than edited, never in conflict.

A second delivery of a service to a household inside its entitlement window is accepted and
flagged as a possible double distribution (:func:`double_distribution`), never dropped.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from campsync_sync.fields import DEFAULT_ENTITLEMENT_DAYS, Entity
from campsync_sync.outcomes import Flag, OpEffect, Rejected, canonical_json, conflict_id
from campsync_sync.wire import Outcome, ReferralOp, RejectReason, ServiceOp, VoidOp

__all__ = [
    "EventState",
    "apply_event_op",
    "apply_void",
    "double_distribution",
    "event_state_of",
]


@dataclass(frozen=True, slots=True)
class EventState:
    """A stored event: its values (as sent), its clock, and its void mark if any."""

    entity: Entity
    id: uuid.UUID
    values: Mapping[str, Any]
    hlc: str
    voided: str | None = None
    void_reason: str | None = None


_EVENT_MODELS: Final[Mapping[Entity, type[ServiceOp] | type[ReferralOp]]] = {
    Entity.SERVICE_DELIVERY: ServiceOp,
    Entity.REFERRAL: ReferralOp,
}
_NOT_VALUES: Final[set[str]] = {"op", "op_id", "id", "hlc"}  # never mutated


def event_state_of(op: ServiceOp | ReferralOp) -> EventState:
    """The state an event operation creates."""
    values = op.model_dump(mode="json", exclude=_NOT_VALUES)
    entity = Entity.SERVICE_DELIVERY if isinstance(op, ServiceOp) else Entity.REFERRAL
    return EventState(entity, op.id, values, op.hlc)


def _normal_values(entity: Entity, values: Mapping[str, Any]) -> Any:
    """Stored values in the form :func:`event_state_of` gives, whatever storage did to them."""
    model = _EVENT_MODELS[entity]
    known = {k: v for k, v in values.items() if k in model.model_fields and k not in _NOT_VALUES}
    placeholders = {"op_id": uuid.UUID(int=0), "id": uuid.UUID(int=0), "hlc": "0" * 32}
    try:
        op = model.model_validate(known | placeholders)
    except ValidationError:
        return None
    return op.model_dump(mode="json", exclude=_NOT_VALUES)


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
    same = existing.entity == new.entity and (
        canonical_json(existing.values) == canonical_json(new.values)
        or _normal_values(existing.entity, existing.values) == new.values
    )
    if not same:
        raise Rejected(RejectReason.ID_REUSED, "event id already holds another event")
    return existing, OpEffect(Outcome.APPLIED, "noop")


def apply_void(existing: EventState | None, op: VoidOp) -> tuple[EventState, OpEffect]:
    """Mark an event void. The earliest void wins, so the result is order-independent.

    Raises:
        Rejected: ``unknown_target`` when no such event exists.
    """
    if existing is None or existing.entity != op.entity or existing.id != op.id:
        raise Rejected(RejectReason.UNKNOWN_TARGET, "no such event to void")
    if existing.voided is not None and existing.voided <= op.hlc:
        return existing, OpEffect(Outcome.APPLIED, "noop")
    voided = EventState(
        existing.entity, existing.id, existing.values, existing.hlc, op.hlc, op.reason
    )
    return voided, OpEffect(Outcome.APPLIED, "void", {"voided": op.hlc, "void_reason": op.reason})


def _instant(value: Any) -> dt.datetime:
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    # Storage that drops the offset (SQLite) hands back UTC wall time.
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def double_distribution(
    new: ServiceOp,
    prior: Sequence[EventState],
    *,
    windows: Mapping[str, int] = DEFAULT_ENTITLEMENT_DAYS,
) -> Flag | None:
    """Flag a delivery of a service the household already received inside its window.

    ``prior`` are the household's stored deliveries (the server loads those of the same
    service within the window); voided deliveries and the event itself are ignored. The
    delivery is still accepted: a flag is for review, never a reason to drop aid records.
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
        and abs(_instant(p.values["delivered_at"]) - new.delivered_at) < window
    )
    if not related:
        return None
    return Flag(
        id=conflict_id(new.id, "double_distribution"),
        kind="double_distribution",
        entity=Entity.SERVICE_DELIVERY,
        entity_id=new.id,
        related_ids=tuple(related),
    )
