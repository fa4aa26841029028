from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query

from api.auth import AnyUser, Staff
from api.conflicts import resolve, service
from api.conflicts.schemas import ConflictDetail, ConflictFilters, ConflictList, ConflictResolve
from api.deps import SessionDep, WriteSessionDep
from api.routes.common import ERRORS_LIST, ERRORS_READ, ERRORS_WRITE

router = APIRouter(prefix="/v1/conflicts", tags=["conflicts"])


@router.get("", summary="List conflicts", responses=ERRORS_LIST)
def list_conflicts(
    filters: Annotated[ConflictFilters, Query()], session: SessionDep, principal: AnyUser
) -> ConflictList:
    """Conflicts in your camps, oldest first (open ones by default).

    Items name the record and the field but hold no values: open one to see both sides.
    """
    page = service.list_conflicts(session=session, principal=principal, filters=filters)
    return ConflictList(items=page.items, next_cursor=page.next_cursor)


@router.get("/{conflict_id}", summary="Get a conflict", responses=ERRORS_READ)
def get_conflict(
    conflict_id: uuid.UUID, session: WriteSessionDep, principal: AnyUser
) -> ConflictDetail:
    """Both values with their clocks, devices, operators and times, and the record's value today.

    Personal values are null for callers without the right to read them.
    """
    return service.get_conflict(session=session, principal=principal, conflict_id=conflict_id)


@router.post("/{conflict_id}/resolve", summary="Resolve a conflict", responses=ERRORS_WRITE)
def resolve_conflict(
    conflict_id: uuid.UUID,
    data: Annotated[ConflictResolve, Body()],
    session: WriteSessionDep,
    principal: Staff,
) -> ConflictDetail:
    """Decide a conflict: keep `current`, take `incoming`, or enter a `value`.

    `value` is for field conflicts only. The decision is written with a fresh server clock, so
    every tablet receives it on its next pull.
    For a `delete` conflict, `current` restores the record and `incoming` keeps the delete; for
    `edit_on_deleted`, `current` keeps the delete and `incoming` restores the record with the edit.
    A second resolution answers 409 `already_resolved`.
    """
    return resolve.resolve_conflict(
        session=session, principal=principal, conflict_id=conflict_id, data=data
    )
