"""A household or a person with what surrounds them: members, events, open reviews."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from sqlalchemy import case, false, select
from sqlmodel import Session

from api.audit import service as audit
from api.camps.scope import in_camps
from api.conflicts import service as conflict_service
from api.events import service as event_service
from api.flags import service as flag_service
from api.households import service
from api.households.schemas import HouseholdDetail, PersonDetail
from api.households.views import (
    HOUSEHOLD,
    HOUSEHOLD_COLUMNS,
    PERSON,
    PERSON_COLUMNS,
    household_view,
    person_view,
)
from api.principal import Principal

MAX_MEMBERS: Final = 100


def get_household(
    *, session: Session, principal: Principal, household_id: uuid.UUID, today: dt.date
) -> HouseholdDetail:
    """A household with its members, latest services and referrals, open conflicts and flags."""
    row = service.load_row(
        session, principal, HOUSEHOLD, HOUSEHOLD_COLUMNS, "household", household_id
    )
    members = list(
        session.execute(
            select(*PERSON_COLUMNS)
            .where(
                PERSON.c.household_id == household_id,
                PERSON.c.is_deleted == false(),
                in_camps(PERSON.c.camp_id, principal.camps),
            )
            .order_by(case((PERSON.c.relationship_to_head == "head", 0), else_=1), PERSON.c.id)
            .limit(MAX_MEMBERS)
        ).mappings()
    )
    member_ids = [m["id"] for m in members]
    camps = principal.camps
    detail = HouseholdDetail(
        **household_view(principal, row).model_dump(),
        members=[person_view(principal, m, today) for m in members],
        services=event_service.recent_services(session, camps, household_id=household_id),
        referrals=event_service.recent_referrals(session, camps, household_id=household_id),
        conflicts=conflict_service.open_conflicts_on(session, [household_id, *member_ids]),
        flags=flag_service.open_flags_about(session, household_id=household_id),
    )
    _audit_read(
        session,
        principal,
        "household.read",
        row["camp_id"],
        "household",
        household_id,
        {"members": member_ids},
    )
    return detail


def get_person(
    *, session: Session, principal: Principal, person_id: uuid.UUID, today: dt.date
) -> PersonDetail:
    """A person with their latest services and referrals, open conflicts and flags."""
    row = service.load_row(session, principal, PERSON, PERSON_COLUMNS, "person", person_id)
    camps = principal.camps
    detail = PersonDetail(
        **person_view(principal, row, today).model_dump(),
        services=event_service.recent_services(
            session, camps, household_id=row["household_id"], person_id=person_id
        ),
        referrals=event_service.recent_referrals(
            session, camps, household_id=row["household_id"], person_id=person_id
        ),
        conflicts=conflict_service.open_conflicts_on(session, [person_id]),
        flags=flag_service.open_flags_about(session, entity_id=person_id),
    )
    _audit_read(session, principal, "person.read", row["camp_id"], "person", person_id, {})
    return detail


def _audit_read(
    session: Session,
    principal: Principal,
    action: str,
    camp_id: str,
    entity: str,
    entity_id: uuid.UUID,
    details: dict[str, Any],
) -> None:
    if not principal.reads_pii:
        return
    audit.record(
        session,
        principal,
        action,
        camp_id=camp_id,
        entity=entity,
        entity_id=entity_id,
        details=details,
    )
    session.commit()
