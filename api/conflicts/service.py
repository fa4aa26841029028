"""Conflicts: clashes the merge kept for a coordinator, listed and shown with both sides.

Lists hold no values (no personal data); a detail holds both sides, their clocks, devices and
operators, and is audited for callers who read personal data. Resolutions are in
:mod:`api.conflicts.resolve`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from campsync_sync import HLC, Entity
from sqlalchemy import Table, select
from sqlmodel import Session

from api.audit import service as audit
from api.camps.scope import camps_to_read, in_camps
from api.conflicts.schemas import (
    ConflictDetail,
    ConflictFilters,
    ConflictResolution,
    ConflictSide,
    ConflictSummary,
)
from api.errors import NotFound
from api.pagination import Page, after_time_and_id, page_of
from api.principal import Principal
from api.redaction import redact_value
from api.registry import store
from api.registry.models import ChangeLog, Conflict

CONFLICT: Final[Table] = Conflict.__table__  # type: ignore[attr-defined]
CHANGE_LOG: Final[Table] = ChangeLog.__table__  # type: ignore[attr-defined]
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
        conditions.append(
            after_time_and_id("conflicts", filters.cursor, CONFLICT.c.created_at, CONFLICT.c.id)
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


def load_row(session: Session, principal: Principal, conflict_id: uuid.UUID) -> Mapping[Any, Any]:
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


def fields_of(row: Mapping[Any, Any]) -> list[str]:
    return [row["field"]] if row["field"] else list(row["fields"] or [])


def _record_now(session: Session, row: Mapping[Any, Any]) -> dict[str, Any]:
    entity = Entity(row["entity"])
    loaded = store.load_registry(session, entity, [row["entity_id"]]).get(row["entity_id"])
    if loaded is None:
        return {"deleted": True}
    values = {f: loaded.state.values.get(f) for f in fields_of(row)}
    return {"deleted": loaded.state.is_deleted, **values}


def get_conflict(
    *, session: Session, principal: Principal, conflict_id: uuid.UUID
) -> ConflictDetail:
    """Both values, their clocks, devices and operators, and the record's value today."""
    row = load_row(session, principal, conflict_id)
    detail = detail_of(session, principal, row)
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


def detail_of(session: Session, principal: Principal, row: Mapping[Any, Any]) -> ConflictDetail:
    entity, fields = Entity(row["entity"]), fields_of(row)
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
