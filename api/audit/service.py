"""The hash-chained audit log: append entries, verify the chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from campsync_sync import REGISTRY_ENTITIES, pii_fields
from sqlalchemy import insert, select, text
from sqlmodel import Session, col

from api.audit.models import AuditLog
from api.audit.schemas import AuditEntry, AuditFilters
from api.pagination import Page, decode_cursor, page_of
from api.principal import Principal
from api.schemas import clamp_datetime
from api.types import utcnow

GENESIS = "0" * 64
# Any constant: PostgreSQL serialises appends on this advisory lock, so the chain never forks.
_LOCK_KEY = 0x63616D7073796E63  # "campsync"
_TABLE = AuditLog.__table__  # type: ignore[attr-defined]
# Built once: SQLAlchemy then finds their compiled form without walking a new statement.
_LAST_HASH = select(_TABLE.c.hash).order_by(_TABLE.c.id.desc()).limit(1)
_INSERT = insert(_TABLE).returning(_TABLE.c.id)
_PERSONAL_KEYS = frozenset().union(*(pii_fields(e) for e in REGISTRY_ENTITIES))


def entry_hash(prev_hash: str, entry: AuditLog) -> str:
    content = {
        "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_type": entry.actor_type,
        "actor_id": entry.actor_id,
        "action": entry.action,
        "camp_id": entry.camp_id,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "details": entry.details,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def record(
    session: Session,
    principal: Principal,
    action: str,
    *,
    camp_id: str | None = None,
    entity: str | None = None,
    entity_id: Any = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append an entry for something a signed-in user did or read."""
    return append(
        session,
        actor_type="user",
        actor_id=principal.actor,
        action=action,
        camp_id=camp_id,
        entity=entity,
        entity_id=entity_id,
        details=details,
    )


def append(
    session: Session,
    *,
    actor_type: str,
    actor_id: str | None,
    action: str,
    camp_id: str | None = None,
    entity: str | None = None,
    entity_id: Any = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one entry in the caller's transaction. ``details`` must hold no personal data.

    Raises:
        ValueError: ``details`` has a key named like a personal field: a programming error,
            caught here so that a careless caller cannot write names into the log.
    """
    _refuse_personal_keys(details or {})
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    prev = session.execute(_LAST_HASH).scalar_one_or_none()
    entry = AuditLog(
        at=utcnow(),
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        camp_id=camp_id,
        entity=entity,
        entity_id=str(entity_id) if entity_id is not None else None,
        details=json.loads(json.dumps(details or {}, default=str)),
        prev_hash=prev or GENESIS,
        hash="",
    )
    entry.hash = entry_hash(entry.prev_hash, entry)
    # One Core INSERT rather than the unit of work: a sync push appends an entry per batch.
    values = entry.model_dump(exclude={"id"})
    entry.id = session.execute(_INSERT, values).scalar_one()
    return entry


def _refuse_personal_keys(details: Any) -> None:
    if isinstance(details, dict):
        bad = _PERSONAL_KEYS.intersection(details)
        if bad:
            raise ValueError(f"audit details must not hold personal fields: {sorted(bad)}")
        for value in details.values():
            _refuse_personal_keys(value)
    elif isinstance(details, list):
        for value in details:
            _refuse_personal_keys(value)


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain: how far it held, and where it broke if it did.

    A verified chain proves no entry was edited, inserted or removed *before its head*. Removing
    the newest entries leaves a shorter valid chain: compare ``head_hash`` with one recorded
    earlier (``campsync admin verify-audit`` prints it) to detect that too.
    """

    entries: int
    first_bad_id: int | None
    problem: str | None
    head_id: int | None = None
    head_hash: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


def verify_entries(entries: Iterable[AuditLog]) -> ChainReport:
    prev, prev_id, count = GENESIS, None, 0
    for entry in entries:
        count += 1
        if entry.prev_hash != prev:
            after = f"entry {prev_id}" if prev_id is not None else "the start of the log"
            return ChainReport(
                count,
                entry.id,
                f"does not link to {after}: an entry between them was deleted or inserted, "
                "or one was rewritten",
                prev_id,
                prev,
            )
        if entry_hash(prev, entry) != entry.hash:
            return ChainReport(
                count, entry.id, "its content does not match its hash: it was edited", prev_id, prev
            )
        prev, prev_id = entry.hash, entry.id
    return ChainReport(count, None, None, prev_id, prev if prev_id is not None else None)


def verify(session: Session) -> ChainReport:
    rows = session.execute(
        select(AuditLog).order_by(col(AuditLog.id)).execution_options(yield_per=1000)
    ).scalars()
    try:
        return verify_entries(rows)
    finally:
        rows.close()  # a break stops early: release the server-side cursor


def list_entries(*, session: Session, filters: AuditFilters) -> Page[AuditEntry]:
    """Entries matching the filters, newest first (admins only: the route's policy)."""
    table = AuditLog.__table__  # type: ignore[attr-defined]
    conditions = []
    for column, wanted in (
        (table.c.camp_id, filters.camp),
        (table.c.action, filters.action),
        (table.c.actor_id, filters.actor),
        (table.c.entity, filters.entity),
        (table.c.entity_id, filters.entity_id),
    ):
        if wanted is not None:
            conditions.append(column == wanted)
    if filters.since is not None:
        conditions.append(table.c.at >= clamp_datetime(filters.since))
    if filters.until is not None:
        conditions.append(table.c.at < clamp_datetime(filters.until))
    if filters.cursor is not None:
        (before,) = decode_cursor("audit", filters.cursor, (int,))
        conditions.append(table.c.id < before)
    rows = session.execute(
        select(table).where(*conditions).order_by(table.c.id.desc()).limit(filters.limit + 1)
    ).mappings()
    return page_of([AuditEntry(**row) for row in rows], filters.limit, "audit", lambda e: (e.id,))
