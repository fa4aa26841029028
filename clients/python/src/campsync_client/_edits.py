"""From what an operator typed to validated operations, and from stored states to records.

Values are validated with the protocol's own catalogue (``campsync_sync.validate_field`` and
``validate_element``) the moment they are entered, so a bad value fails in front of the
operator, never days later at sync time.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Set
from typing import Any

from campsync_sync import (
    Entity,
    EventState,
    FieldError,
    FieldWrite,
    PatchOp,
    RecordState,
    SetChange,
    field_spec,
    uuid7,
    validate_element,
    validate_field,
)

from campsync_client._errors import ValidationError
from campsync_client._models import Household, Person, Referral, ServiceDelivery

__all__ = [
    "clean_fields",
    "household_of",
    "patch",
    "person_of",
    "referral_of",
    "service_of",
    "set_patch",
]

Sets = dict[str, frozenset[str]]


def _error(exc: FieldError) -> ValidationError:
    # FieldError names the field and the rule, never the value: safe to show and to log.
    return ValidationError(exc.field, exc.reason, str(exc))


def _json_form(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value  # refused by the date validator: a date is a day, not an instant
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def clean_fields(
    entity: Entity, fields: Mapping[str, Any], *, reserved: Set[str] = frozenset()
) -> tuple[dict[str, Any], Sets]:
    """Validate field values: returns scalar values in normal form and set fields as sets.

    Raises:
        ValidationError: on an unknown or reserved field or an invalid value.
    """
    scalars: dict[str, Any] = {}
    sets: Sets = {}
    for name, value in fields.items():
        if name in reserved:
            raise ValidationError(name, "reserved", f"{name}: is set by the tablet")
        try:
            spec = field_spec(entity, name)
        except FieldError as exc:
            raise _error(exc) from None
        if spec.is_set and (isinstance(value, str) or not isinstance(value, Iterable)):
            raise ValidationError(name, "invalid_type", f"{name}: must be a collection of strings")
        try:
            if spec.is_set:
                sets[name] = frozenset(validate_element(entity, name, e) for e in value)
            else:
                scalars[name] = validate_field(entity, name, _json_form(value))
        except FieldError as exc:
            raise _error(exc) from None
    return scalars, sets


def patch(
    entity: Entity,
    record_id: uuid.UUID,
    current: RecordState | None,
    hlc: str,
    scalars: Mapping[str, Any],
    sets: Mapping[str, frozenset[str]] = {},
) -> PatchOp | None:
    """A patch writing what differs from ``current``; ``None`` when nothing does.

    Each write carries as ``base`` the clock of the value the tablet saw, so the server can tell
    an edit made after seeing a value (it fast-forwards) from a concurrent one.
    """
    state = current or RecordState()
    writes = {
        name: FieldWrite(value=value, hlc=hlc, base=state.clocks.get(name))
        for name, value in scalars.items()
        if state.values.get(name) != value
    }
    changes: dict[str, list[SetChange]] = {}
    for name, wanted in sets.items():
        have = set(state.members(name))
        delta = [SetChange(element=e, present=True, hlc=hlc) for e in sorted(wanted - have)]
        delta += [SetChange(element=e, present=False, hlc=hlc) for e in sorted(have - wanted)]
        if delta:
            changes[name] = delta
    if not writes and not changes:
        return None
    return PatchOp(op_id=uuid7(), entity=entity.value, id=record_id, fields=writes, sets=changes)


def set_patch(
    entity: Entity,
    record_id: uuid.UUID,
    current: RecordState,
    hlc: str,
    name: str,
    elements: Iterable[str],
    *,
    present: bool,
) -> PatchOp | None:
    """A patch adding (or removing) elements of one set field; ``None`` when already so.

    Raises:
        ValidationError: when the field is not a set or an element is not allowed.
    """
    try:
        cleaned = {validate_element(entity, name, e) for e in elements}
    except FieldError as exc:
        raise _error(exc) from None
    have = set(current.members(name))
    wanted = (have | cleaned) if present else (have - cleaned)
    return patch(entity, record_id, current, hlc, {}, {name: frozenset(wanted)})


# --------------------------------------------------------------------------- reading


def _uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) else None


def person_of(record_id: uuid.UUID, state: RecordState, *, pending: bool) -> Person:
    """The public form of a person's state."""
    v = state.values
    return Person(
        id=record_id,
        household_id=_uuid(v.get("household_id")),
        relationship_to_head=v.get("relationship_to_head"),
        given_name=v.get("given_name"),
        family_name=v.get("family_name"),
        father_name=v.get("father_name"),
        given_name_local=v.get("given_name_local"),
        family_name_local=v.get("family_name_local"),
        father_name_local=v.get("father_name_local"),
        sex=v.get("sex"),
        date_of_birth=_date(v.get("date_of_birth")),
        birth_year=v.get("birth_year"),
        dob_estimated=v.get("dob_estimated"),
        document_type=v.get("document_type"),
        document_number=v.get("document_number"),
        phone=v.get("phone"),
        status=v.get("status") or "active",
        vulnerabilities=frozenset(state.members("vulnerabilities")),
        deleted=state.is_deleted,
        pending=pending,
    )


def household_of(
    record_id: uuid.UUID, state: RecordState, members: Iterable[Person], *, pending: bool
) -> Household:
    """The public form of a household's state, with its members (head first)."""
    v = state.values
    head = _uuid(v.get("head_person_id"))
    ordered = sorted(members, key=lambda p: (p.id != head, p.id))
    return Household(
        id=record_id,
        head_person_id=head,
        arrival_date=_date(v.get("arrival_date")),
        arrival_type=v.get("arrival_type"),
        crossing_point=v.get("crossing_point"),
        origin_country=v.get("origin_country"),
        origin_location=v.get("origin_location"),
        destination_province=v.get("destination_province"),
        destination_district=v.get("destination_district"),
        shelter_status=v.get("shelter_status"),
        shelter_location=v.get("shelter_location"),
        phone=v.get("phone"),
        status=v.get("status") or "active",
        needs=frozenset(state.members("needs")),
        vulnerabilities=frozenset(state.members("vulnerabilities")),
        members=tuple(ordered),
        deleted=state.is_deleted,
        pending=pending,
    )


def _instant(value: Any) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def service_of(state: EventState, *, pending: bool) -> ServiceDelivery:
    """The public form of a service delivery."""
    v = state.values
    return ServiceDelivery(
        id=state.id,
        household_id=uuid.UUID(str(v["household_id"])),
        service=str(v["service"]),
        quantity=float(v.get("quantity", 1)),
        delivered_at=_instant(v["delivered_at"]),
        unit=v.get("unit"),
        person_id=_uuid(v.get("person_id")),
        voided=bool(state.voided),
        void_reason=state.void_reason,
        pending=pending,
    )


def referral_of(state: EventState, *, pending: bool) -> Referral:
    """The public form of a referral."""
    v = state.values
    return Referral(
        id=state.id,
        household_id=uuid.UUID(str(v["household_id"])),
        category=str(v["category"]),
        urgency=str(v["urgency"]),
        status=str(v.get("status") or "open"),
        person_id=_uuid(v.get("person_id")),
        voided=bool(state.voided),
        void_reason=state.void_reason,
        pending=pending,
    )
