from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import AnyUser
from api.deps import SessionDep
from api.events import service
from api.events.schemas import ReferralFilters, ReferralList, ServiceFilters, ServiceList
from api.routes.common import ERRORS_LIST

services = APIRouter(prefix="/v1/services", tags=["services"])
referrals = APIRouter(prefix="/v1/referrals", tags=["referrals"])


@services.get("", summary="List service deliveries", responses=ERRORS_LIST)
def list_services(
    filters: Annotated[ServiceFilters, Query()], session: SessionDep, principal: AnyUser
) -> ServiceList:
    """Deliveries in your camps, newest first, by camp, household, service and time range.

    Voided deliveries (recorded in error) are left out unless `include_voided`.
    """
    page = service.list_services(session=session, principal=principal, filters=filters)
    return ServiceList(items=page.items, next_cursor=page.next_cursor)


@referrals.get("", summary="List referrals", responses=ERRORS_LIST)
def list_referrals(
    filters: Annotated[ReferralFilters, Query()], session: SessionDep, principal: AnyUser
) -> ReferralList:
    """Referrals in your camps, newest first.

    Filter by camp, household, category, urgency, status and time range.
    """
    page = service.list_referrals(session=session, principal=principal, filters=filters)
    return ReferralList(items=page.items, next_cursor=page.next_cursor)
