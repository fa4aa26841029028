"""Resolving a conflict: a coordinator's decision, written like a tablet's edit.

A resolution is a new write stamped with a fresh server clock (``commit_server_edit``), merged
by the same rules as a tablet's and logged under a new commit sequence number, so every tablet
receives it on its next pull. What each choice does:

================  ============================  ===========================  ==================
kind              ``current``                   ``incoming``                 ``value``
================  ============================  ===========================  ==================
field             write the server's value      write the tablet's value     write the value
delete            restore the record (the       keep the delete (no write)   refused (422)
                  concurrent edits survive)
edit_on_deleted   keep the delete (no write)    restore the record and       refused (422)
                                                rewrite the edit's values
================  ============================  ===========================  ==================

"Current" is always what the server held when the clash arrived and "incoming" what the tablet
sent; the merge had already applied the winner, so a resolution that keeps a delete changes no
record. A field resolution rewrites the chosen value even when it already won, so that the
decision has its own clock and history entry. A resolved conflict cannot be resolved again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

from campsync_sync import Entity, ErrorCode, FieldError, Rejected, validate_field
from sqlalchemy import Table, select, update
from sqlmodel import Session

from api.audit import service as audit
from api.conflicts import service
from api.conflicts.schemas import ConflictDetail, ConflictResolve, EnterValue
from api.errors import ConflictError, InvalidInput, NotFound
from api.principal import Principal
from api.registry import store
from api.registry.models import Household
from api.registry.writes import commit_server_edit
from api.types import utcnow

CONFLICT: Final[Table] = service.CONFLICT
HOUSEHOLD: Final[Table] = Household.__table__  # type: ignore[attr-defined]


def _planned_write(row: Mapping[Any, Any], data: ConflictResolve) -> tuple[dict[str, Any], bool]:
    """The fields to write and whether to restore the record, for a choice on a conflict."""
    kind, choice = row["kind"], data.choice
    if kind == "field":
        if isinstance(data, EnterValue):
            return {row["field"]: data.value}, False
        side = "current_value" if choice == "current" else "incoming_value"
        return {row["field"]: row[side]}, False
    if choice == "value":
        raise InvalidInput(
            "a delete conflict is resolved by keeping the record or the delete: "
            "choose current or incoming",
            {"kind": kind},
        )
    keeps_record = (kind == "delete") == (choice == "current")
    if not keeps_record:
        return {}, False
    edit = row["incoming_value"] if kind == "edit_on_deleted" else {}
    return dict(edit or {}), True


def _check_values(
    session: Session, principal: Principal, entity: Entity, fields: Mapping[Any, Any]
) -> None:
    for name, value in fields.items():
        try:
            validate_field(entity, name, value)
        except FieldError as exc:
            raise InvalidInput(
                "the value is not valid for this field", {"field": name, "reason": exc.reason}
            ) from None
        # Moving a person may only name a household the caller can see.
        if name == "household_id" and value is not None:
            camp = session.execute(
                select(HOUSEHOLD.c.camp_id).where(HOUSEHOLD.c.id == uuid.UUID(str(value)))
            ).scalar_one_or_none()
            if camp is None or not principal.sees_camp(camp):
                raise InvalidInput(
                    "the value is not valid for this field",
                    {"field": name, "reason": "unknown_household"},
                )


def resolve_conflict(
    *, session: Session, principal: Principal, conflict_id: uuid.UUID, data: ConflictResolve
) -> ConflictDetail:
    """Apply a coordinator's decision with a fresh server clock; 409 when already resolved."""
    row = service.load_row(session, principal, conflict_id)
    if row["status"] != "open":
        raise ConflictError("the conflict is already resolved", code=ErrorCode.ALREADY_RESOLVED)
    entity = Entity(row["entity"])
    fields, restore = _planned_write(row, data)
    _check_values(session, principal, entity, fields)
    # One statement decides who resolves: a concurrent resolution finds the row closed.
    claimed = session.execute(
        update(CONFLICT)
        .where(CONFLICT.c.id == conflict_id, CONFLICT.c.status == "open")
        .values(status="resolved", resolved_at=utcnow(), resolved_by=principal.user_id)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise ConflictError("the conflict is already resolved", code=ErrorCode.ALREADY_RESOLVED)
    if fields or restore:
        # Lock order everywhere: registry rows, then the audit chain, then the commit counter.
        store.load_registry(session, entity, [row["entity_id"]], lock=True)
    audit.record(
        session,
        principal,
        "conflict.resolve",
        camp_id=row["camp_id"],
        entity="conflict",
        entity_id=conflict_id,
        details={
            "choice": data.choice,
            "kind": row["kind"],
            "entity": row["entity"],
            "entity_id": row["entity_id"],
            "fields": sorted(fields),
            "restore": restore,
        },
    )
    resolution: dict[str, Any] = {"choice": data.choice, "commit_seq": None, "hlc": None}
    if fields or restore:
        try:
            write = commit_server_edit(
                session=session,
                entity=entity,
                entity_id=row["entity_id"],
                fields=fields,
                actor=principal.actor,
                restore=restore,
            )
        except Rejected as exc:
            session.rollback()
            raise ConflictError(
                "the record can no longer be written", {"reason": str(exc.reason)}
            ) from None
        except NotFound:
            session.rollback()
            raise
        resolution.update(commit_seq=write.seq, hlc=write.hlc)
    session.execute(
        update(CONFLICT).where(CONFLICT.c.id == conflict_id).values(resolution=resolution)
    )
    session.commit()
    return service.detail_of(session, principal, service.load_row(session, principal, conflict_id))
