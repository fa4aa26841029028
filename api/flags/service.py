"""Data-quality flags (possible double distribution, clamped clocks): list and resolve.

Flags carry ids and counts, no personal data. Lists are oldest first (a work queue), keyset
paginated on ``(created_at, id)`` over the ``(camp_id, status, created_at)`` index.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

from campsync_sync import ErrorCode
from sqlalchemy import Table, or_, select, update
from sqlmodel import Session

from api.audit import service as audit
from api.camps.scope import camps_to_read, in_camps
from api.errors import ConflictError, NotFound
from api.flags.schemas import FlagFilters, FlagPublic, FlagResolve
from api.pagination import Page, after_time_and_id, page_of
from api.principal import Principal
from api.registry.models import Flag
from api.types import utcnow

FLAG: Final[Table] = Flag.__table__  # type: ignore[attr-defined]
_COLUMNS: Final = tuple(
    FLAG.c[n]
    for n in (
        "id",
        "camp_id",
        "kind",
        "entity",
        "entity_id",
        "household_id",
        "device_id",
        "details",
        "status",
        "created_at",
        "resolved_at",
        "resolved_by",
        "resolution",
    )
)
OPEN_LIMIT: Final = 100


def flag_view(row: Mapping[Any, Any]) -> FlagPublic:
    return FlagPublic(**row)


def list_flags(*, session: Session, principal: Principal, filters: FlagFilters) -> Page[FlagPublic]:
    """Flags matching the filters, oldest first."""
    camps = camps_to_read(session, principal, filters.camp)
    conditions = [in_camps(FLAG.c.camp_id, camps)]
    if filters.status is not None:
        conditions.append(FLAG.c.status == filters.status)
    if filters.kind is not None:
        conditions.append(FLAG.c.kind == filters.kind)
    if filters.household_id is not None:
        conditions.append(FLAG.c.household_id == filters.household_id)
    if filters.cursor is not None:
        conditions.append(after_time_and_id("flags", filters.cursor, FLAG.c.created_at, FLAG.c.id))
    rows = session.execute(
        select(*_COLUMNS)
        .where(*conditions)
        .order_by(FLAG.c.created_at, FLAG.c.id)
        .limit(filters.limit + 1)
    ).mappings()
    return page_of(
        [flag_view(r) for r in rows], filters.limit, "flags", lambda f: (f.created_at, f.id)
    )


def open_flags_about(
    session: Session,
    *,
    household_id: uuid.UUID | None = None,
    entity_id: uuid.UUID | None = None,
) -> list[FlagPublic]:
    """Open flags about a household (or naming it as their entity), or about one record."""
    if household_id is not None:
        target = or_(FLAG.c.household_id == household_id, FLAG.c.entity_id == household_id)
    else:
        target = FLAG.c.entity_id == entity_id
    rows = session.execute(
        select(*_COLUMNS)
        .where(target, FLAG.c.status == "open")
        .order_by(FLAG.c.created_at, FLAG.c.id)
        .limit(OPEN_LIMIT)
    ).mappings()
    return [flag_view(r) for r in rows]


def resolve_flag(
    *, session: Session, principal: Principal, flag_id: uuid.UUID, data: FlagResolve
) -> FlagPublic:
    """Close an open flag as confirmed or dismissed; a second resolution is refused."""
    row = session.execute(select(*_COLUMNS).where(FLAG.c.id == flag_id)).mappings().first()
    if row is None:
        raise NotFound("flag not found")
    principal.require_camp(row["camp_id"], what="flag")
    # One statement decides who resolves: concurrent resolutions cannot both succeed.
    changed = session.execute(
        update(FLAG)
        .where(FLAG.c.id == flag_id, FLAG.c.status == "open")
        .values(
            status="resolved",
            resolution=data.resolution,
            resolved_at=utcnow(),
            resolved_by=principal.user_id,
        )
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise ConflictError("the flag is already resolved", code=ErrorCode.ALREADY_RESOLVED)
    audit.record(
        session,
        principal,
        "flag.resolve",
        camp_id=row["camp_id"],
        entity="flag",
        entity_id=flag_id,
        details={"kind": row["kind"], "resolution": data.resolution},
    )
    session.commit()
    resolved = session.execute(select(*_COLUMNS).where(FLAG.c.id == flag_id)).mappings().one()
    return flag_view(resolved)
