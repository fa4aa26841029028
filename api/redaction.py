"""What a caller without the right to read personal data gets instead of it.

Personal fields are those the protocol's catalogue marks ``pii`` (names, dates and years of
birth, document numbers, phones). They are replaced by ``null`` and named in the item's
``redacted`` list, which always lists every personal field of the entity (not only the ones that
held a value), so that a redacted view does not even reveal which fields were filled in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from campsync_sync import Entity, pii_fields

from api.principal import Principal


@cache
def personal_fields(entity: Entity) -> frozenset[str]:
    return pii_fields(entity)


def is_personal(entity: Entity, key: str) -> bool:
    """Whether a field name, or a change-log key such as ``needs:food``, is personal."""
    return key.split(":", 1)[0] in personal_fields(entity)


def redact_record(
    principal: Principal, entity: Entity, values: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The values to show, and the list of withheld fields."""
    if principal.reads_pii:
        return values, []
    hidden = sorted(personal_fields(entity))
    return {k: (None if k in personal_fields(entity) else v) for k, v in values.items()}, hidden


def redact_changes(
    principal: Principal, entity: Entity, changes: Mapping[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    """A change-log entry's changes, with personal values withheld."""
    changes = dict(changes or {})
    if principal.reads_pii:
        return changes, []
    hidden = sorted(k for k in changes if is_personal(entity, k))
    return {k: (None if k in hidden else v) for k, v in changes.items()}, hidden


def redact_value(
    principal: Principal, entity: Entity, fields: Iterable[str], value: Any
) -> tuple[Any, bool]:
    """A conflict's value for ``fields``: a scalar for one field, or a ``{field: value}`` map."""
    if principal.reads_pii:
        return value, False
    if isinstance(value, dict):
        hidden = {k for k in value if is_personal(entity, k)}
        return {k: (None if k in hidden else v) for k, v in value.items()}, bool(hidden)
    if any(is_personal(entity, f) for f in fields):
        return None, True
    return value, False
