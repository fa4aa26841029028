from __future__ import annotations

from fastapi import APIRouter, status

from api.auth import Admin, AnyUser
from api.camps import service
from api.camps.schemas import CampCreate, CampList, CampPublic
from api.deps import SessionDep, WriteSessionDep
from api.routes.common import ERRORS_READ, ERRORS_WRITE, CampIdPath

router = APIRouter(prefix="/v1/camps", tags=["camps"])


@router.get("", summary="List the camps you may see", responses=ERRORS_READ)
def list_camps(session: SessionDep, principal: AnyUser) -> CampList:
    """Camps in the caller's scope, ordered by id."""
    camps = service.list_camps(session=session, principal=principal)
    return CampList(items=[CampPublic.model_validate(c) for c in camps])


@router.post(
    "",
    summary="Create a camp",
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS_WRITE,
)
def create_camp(data: CampCreate, session: WriteSessionDep, principal: Admin) -> CampPublic:
    """Admins only. The id is a short lowercase slug such as ``torkham-1``."""
    camp = service.create_camp(session=session, data=data, actor=principal.actor)
    return CampPublic.model_validate(camp)


@router.get("/{camp_id}", summary="Get one camp", responses=ERRORS_READ)
def get_camp(camp_id: CampIdPath, session: SessionDep, principal: AnyUser) -> CampPublic:
    """A camp outside the caller's scope answers 404, like one that does not exist."""
    camp = service.get_camp(session=session, camp_id=camp_id, principal=principal)
    return CampPublic.model_validate(camp)
