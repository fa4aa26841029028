from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.audit import service
from api.audit.schemas import AuditFilters, AuditList
from api.auth import Admin
from api.deps import SessionDep
from api.routes.common import ERRORS_LIST

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", summary="Read the audit log", responses=ERRORS_LIST)
def list_audit(
    filters: Annotated[AuditFilters, Query()], session: SessionDep, principal: Admin
) -> AuditList:
    """The hash-chained audit log, newest first (admins only).

    Reads of personal data, coordinator changes, resolutions, exports, enrolments and
    revocations, with ids and counts but never personal values. `campsync admin verify-audit`
    checks the chain.
    """
    page = service.list_entries(session=session, filters=filters)
    return AuditList(items=page.items, next_cursor=page.next_cursor)
