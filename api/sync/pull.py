"""Pull pages: what changed in a device's camp after its cursor, sealed to the device.

The cursor is a change-log ``seq``. Seqs are allocated in commit order (store.py), so a reader
that has seen every row up to ``seq`` never meets a later commit with a smaller one. A page
covers whole commit groups: about ``limit`` change-log rows, except that a single group
larger than the limit travels whole.

Each record travels once per page, in its current state, and only in the page that covers its
latest change: a record edited ten times reaches a fresh tablet once, not ten times. That is
what makes provisioning a camp (cursor 0) cheap: the tablet receives current rows, not the
history. The rule stays exact for any cursor, because a record changed after the cursor has
its latest change after the cursor, and a later page covers it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from campsync_sync import (
    Entity,
    ErrorCode,
    PullPage,
    RowState,
    record_state_to_row,
)
from sqlalchemy import func, select
from sqlmodel import Session, col

from api import clock
from api.devices.models import Device
from api.errors import DomainError
from api.registry import store
from api.registry.models import ChangeLog
from api.sync.keys import KeySet
from api.sync.models import SyncCounter
from api.sync.service import new_message_id, seal_for_device


def _page_bounds(
    session: Session, camp_id: str, cursor: int, limit: int
) -> tuple[int, bool] | None:
    """The last seq of this page and whether more follow; ``None`` when nothing is new."""
    seqs: Sequence[int] = (
        session.execute(
            select(col(ChangeLog.seq))
            .where(col(ChangeLog.camp_id) == camp_id, col(ChangeLog.seq) > cursor)
            .order_by(col(ChangeLog.seq))
            .limit(limit + 1)
        )
        .scalars()
        .all()
    )
    if not seqs:
        return None
    if len(seqs) <= limit:
        return seqs[-1], False
    following = seqs[limit]
    complete = [s for s in seqs[:limit] if s < following]
    if complete:
        return complete[-1], True
    # One commit group larger than the page: it travels whole, never split.
    more = session.execute(
        select(col(ChangeLog.seq))
        .where(col(ChangeLog.camp_id) == camp_id, col(ChangeLog.seq) > following)
        .limit(1)
    ).first()
    return following, more is not None


def _latest(
    session: Session, camp_id: str, cursor: int, upper: int
) -> dict[uuid.UUID, tuple[Entity, int]]:
    """Records changed in (cursor, upper] whose latest change is in that range."""
    touched = session.execute(
        select(col(ChangeLog.entity), col(ChangeLog.entity_id), func.max(col(ChangeLog.seq)))
        .where(
            col(ChangeLog.camp_id) == camp_id,
            col(ChangeLog.seq) > cursor,
            col(ChangeLog.seq) <= upper,
        )
        .group_by(col(ChangeLog.entity), col(ChangeLog.entity_id))
    ).all()
    if not touched:
        return {}
    later = set(
        session.execute(
            select(col(ChangeLog.entity_id))
            .where(
                store.among(
                    ChangeLog.__table__.c.entity_id,  # type: ignore[attr-defined]
                    session.get_bind().dialect.name,
                    {r[1] for r in touched},
                ),
                col(ChangeLog.seq) > upper,
            )
            .distinct()
        ).scalars()
    )
    return {
        entity_id: (Entity(entity), seq)
        for entity, entity_id, seq in touched
        if entity_id not in later
    }


def _rows(session: Session, records: dict[uuid.UUID, tuple[Entity, int]]) -> list[RowState]:
    by_entity: dict[Entity, list[uuid.UUID]] = {}
    for entity_id, (entity, _) in records.items():
        by_entity.setdefault(entity, []).append(entity_id)
    rows: list[RowState] = []
    for entity, ids in by_entity.items():
        if entity in store.REGISTRY_TABLES:
            for rid, record in store.load_registry(session, entity, ids).items():
                state = record.state
                if state.erased:
                    state.values.clear()
                rows.append(record_state_to_row(entity, rid, records[rid][1], state))
        else:
            for eid, event in store.load_events(session, entity, ids).items():
                values = {
                    **event.state.values,
                    "voided": event.state.voided,
                    "void_reason": event.state.void_reason,
                }
                rows.append(RowState(entity=entity, id=eid, seq=records[eid][1], values=values))
    rows.sort(key=lambda r: (r.seq, r.entity.value, r.id))
    return rows


def pull_page(*, session: Session, keys: KeySet, device: Device, cursor: int, limit: int) -> bytes:
    """The page of changes after ``cursor`` in the device's camp, sealed to the device."""
    newest = session.execute(
        select(col(SyncCounter.value)).where(col(SyncCounter.name) == store.CHANGE_SEQ)
    ).scalar_one_or_none()
    if cursor < 0 or cursor > (newest or 0):
        raise DomainError(
            "this cursor is not one the server handed out: pull again from 0",
            {"cursor": cursor},
            code=ErrorCode.CURSOR_INVALID,
        )
    bounds = _page_bounds(session, device.camp_id, cursor, limit)
    if bounds is None:
        upper, has_more, changes = cursor, False, []
    else:
        upper, has_more = bounds
        changes = _rows(session, _latest(session, device.camp_id, cursor, upper))
    page = PullPage(
        camp_id=device.camp_id,
        cursor=cursor,
        next_cursor=upper,
        has_more=has_more,
        server_hlc=str(clock.now()),
        changes=changes,
    )
    return seal_for_device(
        keys,
        device,
        typ="pull",
        batch=new_message_id(),
        seq=cursor,
        plaintext=page.model_dump_json().encode(),
    )
