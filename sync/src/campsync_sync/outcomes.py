"""What applying an operation produces: effects, conflict and flag records, rejections.

Conflict and flag ids are UUIDv5 of the operation (or event) id and a tag, so a replayed
operation names the same record again and a receiver stores it once.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from campsync_sync.fields import Entity
from campsync_sync.wire import Outcome, RejectReason

__all__ = [
    "CONFLICT_NAMESPACE",
    "Conflict",
    "Flag",
    "OpEffect",
    "Rejected",
    "canonical_json",
    "conflict_id",
]

CONFLICT_NAMESPACE: Final = uuid.UUID("6f1c7a52-41d3-4c0e-9d4e-3f0b6c1d2e7a")
"""Namespace of the deterministic ids of conflict and flag records."""


def canonical_json(value: Any) -> str:
    """A value's canonical JSON: sorted keys, no whitespace, non-ASCII kept as is.

    Equal JSON values have equal canonical forms (``1`` and ``true`` do not); the merge breaks
    clock ties by comparing these strings.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def conflict_id(op_id: uuid.UUID, tag: str) -> uuid.UUID:
    """The id of the conflict or flag record that operation ``op_id`` opens for ``tag``."""
    return uuid.uuid5(CONFLICT_NAMESPACE, f"{op_id}:{tag}")


@dataclass(frozen=True, slots=True)
class Conflict:
    """A clash kept for coordinator review. Its id is deterministic: replays create no twin.

    ``kind`` is ``field`` (concurrent writes to an identity field), ``delete`` (a delete won
    over concurrent edits of ``fields``) or ``edit_on_deleted`` (an edit reached a tombstone).
    Set elements appear in ``fields`` and in the values as ``"set_name:element"`` keys.
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
            value, plus ``deleted``/``restored`` for tombstone changes; what the history of
            the record shows.
        conflicts: conflict records to store.
        flags: flag records to store.
    """

    outcome: Outcome
    kind: Literal["create", "update", "delete", "restore", "event", "void", "noop"]
    changes: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)


class Rejected(Exception):
    """An operation is invalid; it goes to quarantine with ``reason`` and ``detail``.

    ``detail`` names fields and rules, never values, so it may go into a receipt or a log.
    """

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
