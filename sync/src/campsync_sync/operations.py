"""Reading one raw operation of a batch: upcast, parse, normalise, or reject.

A receiver reads each operation on its own (:func:`read_operation`), so one malformed operation
is rejected in the receipt and kept in quarantine without blocking the others. Rejections name
fields and rules, never values: they end up in receipts and logs.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import ValidationError

from campsync_sync.fields import (
    DELETE_REASONS,
    ENTITY_FIELDS,
    REFERRAL_CATEGORIES,
    REFERRAL_STATUSES,
    REFERRAL_URGENCIES,
    SERVICES,
    VOID_REASONS,
    Entity,
    FieldError,
    validate_element,
    validate_field,
)
from campsync_sync.outcomes import Rejected
from campsync_sync.versions import SCHEMA_VERSION, SUPPORTED_SCHEMA_VERSIONS
from campsync_sync.wire import (
    DeleteOp,
    FieldWrite,
    Operation,
    PatchOp,
    ReferralOp,
    RejectReason,
    ServiceOp,
    VoidOp,
    parse_operation,
)

__all__ = ["normalize_operation", "read_operation"]

# Names that may appear in a rejection's detail: schema words and catalogue fields. Anything
# else in an error location is a key the sender chose and could hold personal data.
_SAFE_WORDS: Final = frozenset(
    {"patch", "delete", "restore", "service", "referral", "void", "value", "hlc", "base"}
    | {"element", "present"}
    | {name for model in (PatchOp, DeleteOp, ServiceOp, ReferralOp) for name in model.model_fields}
    | {name for specs in ENTITY_FIELDS.values() for name in specs}
)


def _where(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    parts = [p if isinstance(p, int) or p in _SAFE_WORDS else "?" for p in error["loc"]]
    return f"{'.'.join(map(str, parts)) or 'operation'}: {error['type']}"[:200]


def read_operation(raw: Any, *, schema_version: int = SCHEMA_VERSION) -> Operation:
    """Upcast, parse and normalise one raw operation of a batch: what a receiver does per op.

    Args:
        raw: the operation as it came in the batch (a JSON object).
        schema_version: the batch's schema version; older supported versions are upcast.

    Raises:
        Rejected: ``unsupported_schema``, ``invalid_operation`` (with the location and the
            kind of the first error, never the value), ``unknown_field`` or ``invalid_value``.
    """
    if schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise Rejected(RejectReason.UNSUPPORTED_SCHEMA, f"schema {schema_version} is unknown")
    # Schema 1 is the first; a later schema adds here one upcasting step per older version.
    try:
        op = parse_operation(raw)
    except ValidationError as exc:
        raise Rejected(RejectReason.INVALID_OPERATION, _where(exc)) from None
    return normalize_operation(op)


def normalize_operation(op: Operation) -> Operation:
    """Validate every value of an operation against the domain catalogue.

    Returns the operation with values in their normal form. Normalising is idempotent; a
    sender must put normal values in its operations (and keep them so locally), or its
    replica and the server's would hold different spellings under the same clock.

    Raises:
        Rejected: ``unknown_field`` or ``invalid_value``, with the field name as detail.
    """
    try:
        if isinstance(op, PatchOp):
            return _normalize_patch(op)
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
        name = exc.field if exc.field in _SAFE_WORDS else "?"
        raise Rejected(reason or RejectReason.INVALID_VALUE, f"{name}: {exc.reason}") from None
    return op


# The specs of each entity's scalar fields, looked up once per field write (the server's hot
# path); a name missing here is a set field or unknown, and validate_field says which.
_SCALARS: Final = {
    entity: {name: spec for name, spec in specs.items() if not spec.is_set}
    for entity, specs in ENTITY_FIELDS.items()
}


_ENTITY: Final = {entity.value: entity for entity in Entity}


def _normalize_patch(op: PatchOp) -> PatchOp:
    # Senders should already send normal values, so copy only what normalising changed.
    entity = _ENTITY[op.entity]
    scalars = _SCALARS[entity]
    fields: dict[str, FieldWrite] | None = None
    for name, write in op.fields.items():
        spec = scalars.get(name)
        sent = write.value
        if spec is None or sent is None:
            value = validate_field(entity, name, sent)  # unknown, a set, cleared
        else:
            value = spec.validate(name, sent)
        # The same value means the same type too: 1 == 1.0 == True.
        if value is not sent and (type(value) is not type(sent) or value != sent):
            if fields is None:
                fields = dict(op.fields)
            fields[name] = write.model_copy(update={"value": value})
    for name, set_changes in op.sets.items():
        for change in set_changes:
            validate_element(entity, name, change.element)  # a catalogue name: already normal
    return op if fields is None else op.model_copy(update={"fields": fields})


def _choose(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise FieldError(name, "invalid_choice", f"must be one of {', '.join(options)}")
