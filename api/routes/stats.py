from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import AnyUser
from api.deps import SessionDep
from api.routes.common import ERRORS_READ, CampIdPath
from api.stats import service
from api.stats.schemas import CampStats, StatsFilters
from api.types import utcnow

router = APIRouter(prefix="/v1/camps", tags=["camps"])


@router.get("/{camp_id}/stats", summary="A camp's statistics", responses=ERRORS_READ)
def camp_stats(
    camp_id: CampIdPath,
    filters: Annotated[StatsFilters, Query()],
    session: SessionDep,
    principal: AnyUser,
) -> CampStats:
    """Households and people (by sex and age band), needs, vulnerabilities, deliveries per day.

    Also the open conflicts and flags and the camp's tablets. Counts cover active records;
    deleted ones (tombstones) are never counted. Aggregates only: no personal data.
    """
    return service.camp_stats(
        session=session,
        principal=principal,
        camp_id=camp_id,
        filters=filters,
        today=utcnow().date(),
    )
