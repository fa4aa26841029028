"""The hash-chained audit log: append entries, verify the chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlmodel import Session, col

from api.audit.models import AuditLog
from api.types import utcnow

GENESIS = "0" * 64
# Any constant: PostgreSQL serialises appends on this advisory lock, so the chain never forks.
_LOCK_KEY = 0x63616D7073796E63  # "campsync"


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
    """Append one entry in the caller's transaction. ``details`` must hold no personal data."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    prev = session.execute(
        select(col(AuditLog.hash)).order_by(col(AuditLog.id).desc()).limit(1)
    ).scalar_one_or_none()
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
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    entries: int
    first_bad_id: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


def verify_entries(entries: Iterable[AuditLog]) -> ChainReport:
    prev = GENESIS
    count = 0
    for entry in entries:
        count += 1
        if entry.prev_hash != prev:
            return ChainReport(count, entry.id, "links to a different previous entry")
        if entry_hash(prev, entry) != entry.hash:
            return ChainReport(count, entry.id, "content does not match its hash")
        prev = entry.hash
    return ChainReport(count, None, None)


def verify(session: Session) -> ChainReport:
    rows = session.execute(
        select(AuditLog).order_by(col(AuditLog.id)).execution_options(yield_per=1000)
    ).scalars()
    return verify_entries(rows)
