from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from api.audit import service as audit
from api.camps.models import Camp
from api.camps.schemas import CampCreate
from api.errors import AlreadyExists, NotFound
from api.principal import Principal


def create_camp(*, session: Session, data: CampCreate, actor: str) -> Camp:
    """Create a camp; its id is a short slug chosen by the admin."""
    if session.get(Camp, data.id) is not None:
        raise AlreadyExists(f"camp {data.id!r} already exists")
    camp = Camp(**data.model_dump())
    session.add(camp)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise AlreadyExists(f"camp {data.id!r} already exists") from None
    audit.append(session, actor_type="user", actor_id=actor, action="camp.create", camp_id=camp.id)
    session.commit()
    return camp


def list_camps(*, session: Session, principal: Principal | None) -> list[Camp]:
    """Camps the caller may see, by id."""
    query = select(Camp).order_by(col(Camp.id))
    if principal is not None and principal.camps is not None:
        query = query.where(col(Camp.id).in_(sorted(principal.camps)))
    return list(session.execute(query).scalars())


def get_camp(*, session: Session, camp_id: str, principal: Principal | None) -> Camp:
    if principal is not None:
        principal.require_camp(camp_id)
    camp = session.get(Camp, camp_id)
    if camp is None:
        raise NotFound("camp not found")
    return camp
