"""Conflicts: clashes the merge kept for a coordinator, listed, shown and resolved.

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

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from campsync_sync import HLC, Entity, ErrorCode, FieldError, Rejected, validate_field
from sqlalchemy import Table, and_, or_, select, update
from sqlmodel import Session

from api.audit import service as audit
from api.camps.scope import camps_to_read, in_camps
from api.conflicts.schemas import (
    ConflictDetail,
    ConflictFilters,
    ConflictResolution,
    ConflictResolve,
    ConflictSide,
    ConflictSummary,
    EnterValue,
)
from api.errors import ConflictError, InvalidInput, NotFound
from api.pagination import Page, decode_cursor, page_of
from api.principal import Principal
from api.redaction import redact_value
from api.registry import store
from api.registry.models import ChangeLog, Conflict, Household
from api.registry.writes import commit_server_edit
from api.types import utcnow

CONFLICT: Final[Table] = Conflict.__table__  # type: ignore[attr-defined]
CHANGE_LOG: Final[Table] = ChangeLog.__table__  # type: ignore[attr-defined]
HOUSEHOLD: Final[Table] = Household.__table__  # type: ignore[attr-defined]
OPEN_LIMIT: Final = 100
_SUMMARY: Final = tuple(
    CONFLICT.c[n]
    for n in (
        "id",
        "camp_id",
        "kind",
        "entity",
        "entity_id",
        "field",
        "fields",
        "winner",
        "status",
        "created_at",
        "resolved_at",
    )
)


def summary_view(row: Mapping[Any, Any]) -> ConflictSummary:
    return ConflictSummary(**{c.name: row[c.name] for c in _SUMMARY})


def list_conflicts(
    *, session: Session, principal: Principal, filters: ConflictFilters
) -> Page[ConflictSummary]:
    """Conflicts matching the filters, oldest first; the values are in the detail only."""
    camps = camps_to_read(session, principal, filters.camp)
    conditions = [in_camps(CONFLICT.c.camp_id, camps)]
    for column, wanted in (
        (CONFLICT.c.status, filters.status),
        (CONFLICT.c.entity, filters.entity),
        (CONFLICT.c.entity_id, filters.entity_id),
        (CONFLICT.c.kind, filters.kind),
    ):
        if wanted is not None:
            conditions.append(column == wanted)
    if filters.cursor is not None:
        when, after = decode_cursor("conflicts", filters.cursor, (dt.datetime, uuid.UUID))
        conditions.append(
            or_(
                CONFLICT.c.created_at > when,
                and_(CONFLICT.c.created_at == when, CONFLICT.c.id > after),
            )
        )
    rows = session.execute(
        select(*_SUMMARY)
        .where(*conditions)
        .order_by(CONFLICT.c.created_at, CONFLICT.c.id)
        .limit(filters.limit + 1)
    ).mappings()
    return page_of(
        [summary_view(r) for r in rows],
        filters.limit,
        "conflicts",
        lambda c: (c.created_at, c.id),
    )


def open_conflicts_on(session: Session, entity_ids: Sequence[uuid.UUID]) -> list[ConflictSummary]:
    rows = session.execute(
        select(*_SUMMARY)
        .where(CONFLICT.c.entity_id.in_(list(entity_ids)), CONFLICT.c.status == "open")
        .order_by(CONFLICT.c.created_at, CONFLICT.c.id)
        .limit(OPEN_LIMIT)
    ).mappings()
    return [summary_view(r) for r in rows]


def _load(session: Session, principal: Principal, conflict_id: uuid.UUID) -> Mapping[Any, Any]:
    row = session.execute(select(CONFLICT).where(CONFLICT.c.id == conflict_id)).mappings().first()
    if row is None:
        raise NotFound("conflict not found")
    principal.require_camp(row["camp_id"], what="conflict")
    return row


def _written_at(hlc: str | None) -> dt.datetime | None:
    if hlc is None:
        return None
    millis = HLC.decode(hlc).millis
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)


def _writer(
    session: Session, entity_id: uuid.UUID, hlc: str | None
) -> tuple[uuid.UUID | None, str | None]:
    """Device and operator of the change that wrote ``hlc`` to a record, from its history."""
    if hlc is None:
        return None, None
    row = session.execute(
        select(CHANGE_LOG.c.device_id, CHANGE_LOG.c.actor)
        .where(CHANGE_LOG.c.entity_id == entity_id, CHANGE_LOG.c.hlc == hlc)
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _fields_of(row: Mapping[Any, Any]) -> list[str]:
    return [row["field"]] if row["field"] else list(row["fields"] or [])


def _record_now(session: Session, row: Mapping[Any, Any]) -> dict[str, Any]:
    entity = Entity(row["entity"])
    loaded = store.load_registry(session, entity, [row["entity_id"]]).get(row["entity_id"])
    if loaded is None:
        return {"deleted": True}
    values = {f: loaded.state.values.get(f) for f in _fields_of(row)}
    return {"deleted": loaded.state.is_deleted, **values}


def get_conflict(
    *, session: Session, principal: Principal, conflict_id: uuid.UUID
) -> ConflictDetail:
    """Both values, their clocks, devices and operators, and the record's value today."""
    row = _load(session, principal, conflict_id)
    detail = _detail(session, principal, row)
    if principal.reads_pii:
        audit.record(
            session,
            principal,
            "conflict.read",
            camp_id=row["camp_id"],
            entity="conflict",
            entity_id=conflict_id,
            details={"entity": row["entity"], "entity_id": row["entity_id"]},
        )
        session.commit()
    return detail


def _detail(session: Session, principal: Principal, row: Mapping[Any, Any]) -> ConflictDetail:
    entity, fields = Entity(row["entity"]), _fields_of(row)
    current_device, current_operator = _writer(session, row["entity_id"], row["current_hlc"])
    current_value, hide_current = redact_value(principal, entity, fields, row["current_value"])
    incoming_value, hide_incoming = redact_value(principal, entity, fields, row["incoming_value"])
    now_value, hide_now = redact_value(principal, entity, fields, _record_now(session, row))
    resolution = row["resolution"] if isinstance(row["resolution"], dict) else None
    redacted = [
        name
        for name, hidden in (
            ("current.value", hide_current),
            ("incoming.value", hide_incoming),
            ("record_now", hide_now),
        )
        if hidden
    ]
    return ConflictDetail(
        **summary_view(row).model_dump(),
        current=ConflictSide(
            value=current_value,
            hlc=row["current_hlc"],
            written_at=_written_at(row["current_hlc"]),
            device_id=row["current_device_id"] or current_device,
            operator=current_operator,
        ),
        incoming=ConflictSide(
            value=incoming_value,
            hlc=row["incoming_hlc"],
            written_at=_written_at(row["incoming_hlc"]),
            device_id=row["incoming_device_id"],
            operator=row["incoming_operator"],
        ),
        record_now=now_value,
        resolution=ConflictResolution(
            choice=resolution["choice"],
            resolved_by=row["resolved_by"],
            commit_seq=resolution.get("commit_seq"),
            hlc=resolution.get("hlc"),
        )
        if resolution is not None
        else None,
        redacted=redacted,
    )


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
    row = _load(session, principal, conflict_id)
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
    return _detail(session, principal, _load(session, principal, conflict_id))
