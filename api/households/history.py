"""A record's versions, from the change log: who changed what, from which device, and when."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Final

from campsync_sync import HLC, Entity
from sqlalchemy import Table, select
from sqlmodel import Session

from api.audit import service as audit
from api.households.schemas import HistoryEntry, HistoryFilters
from api.households.service import require_record
from api.pagination import Page, decode_cursor, page_of
from api.principal import Principal
from api.redaction import redact_changes
from api.registry.models import ChangeLog

CHANGE_LOG: Final[Table] = ChangeLog.__table__  # type: ignore[attr-defined]
_COLUMNS: Final = tuple(
    CHANGE_LOG.c[n] for n in ("id", "seq", "kind", "at", "hlc", "device_id", "actor", "changes")
)


def _entry(principal: Principal, entity: Entity, row: Mapping[Any, Any]) -> HistoryEntry:
    changes, redacted = redact_changes(principal, entity, row["changes"])
    written = (
        dt.datetime.fromtimestamp(HLC.decode(row["hlc"]).millis / 1000, tz=dt.UTC)
        if row["hlc"]
        else None
    )
    return HistoryEntry(
        seq=row["seq"],
        kind=row["kind"],
        recorded_at=row["at"],
        written_at=written,
        hlc=row["hlc"],
        device_id=row["device_id"],
        actor=row["actor"],
        changes=changes,
        redacted=redacted,
    )


def record_history(
    *,
    session: Session,
    principal: Principal,
    entity: Entity,
    record_id: uuid.UUID,
    filters: HistoryFilters,
) -> Page[HistoryEntry]:
    """The record's changes in the order they were committed, oldest first."""
    camp_id = require_record(
        session=session, principal=principal, entity=entity, record_id=record_id
    )
    conditions = [CHANGE_LOG.c.entity_id == record_id, CHANGE_LOG.c.entity == entity.value]
    if filters.cursor is not None:
        (after,) = decode_cursor("history", filters.cursor, (int,))
        conditions.append(CHANGE_LOG.c.id > after)
    rows = list(
        session.execute(
            select(*_COLUMNS).where(*conditions).order_by(CHANGE_LOG.c.id).limit(filters.limit + 1)
        ).mappings()
    )
    entries = [(row["id"], _entry(principal, entity, row)) for row in rows]
    page = page_of(entries, filters.limit, "history", lambda e: (e[0],))
    if principal.reads_pii:
        audit.record(
            session,
            principal,
            f"{entity.value}.history",
            camp_id=camp_id,
            entity=entity.value,
            entity_id=record_id,
            details={"count": len(page.items)},
        )
        session.commit()
    return Page([entry for _, entry in page.items], page.next_cursor)
