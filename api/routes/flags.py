from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import AnyUser, Staff
from api.deps import SessionDep, WriteSessionDep
from api.flags import service
from api.flags.schemas import FlagFilters, FlagList, FlagPublic, FlagResolve
from api.routes.common import ERRORS_LIST, ERRORS_WRITE

router = APIRouter(prefix="/v1/flags", tags=["flags"])


@router.get("", summary="List data-quality flags", responses=ERRORS_LIST)
def list_flags(
    filters: Annotated[FlagFilters, Query()], session: SessionDep, principal: AnyUser
) -> FlagList:
    """Data-quality flags in your camps, oldest first (open ones by default).

    Possible double distributions (a service delivered again inside its entitlement window),
    clamped tablet clocks, and other findings of the merge.
    """
    page = service.list_flags(session=session, principal=principal, filters=filters)
    return FlagList(items=page.items, next_cursor=page.next_cursor)


@router.post("/{flag_id}/resolve", summary="Resolve a flag", responses=ERRORS_WRITE)
def resolve_flag(
    flag_id: uuid.UUID, data: FlagResolve, session: WriteSessionDep, principal: Staff
) -> FlagPublic:
    """Close a flag as `confirmed` or `dismissed`.

    A second resolution answers 409 `already_resolved`.
    """
    return service.resolve_flag(session=session, principal=principal, flag_id=flag_id, data=data)
