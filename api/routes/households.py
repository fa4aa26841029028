from __future__ import annotations

import uuid
from typing import Annotated

from campsync_sync import Entity
from fastapi import APIRouter, Query

from api.auth import AnyUser
from api.deps import WriteSessionDep
from api.households import detail, history, service
from api.households.schemas import (
    HistoryFilters,
    HistoryList,
    HouseholdDetail,
    HouseholdFilters,
    HouseholdList,
    PersonDetail,
    PersonFilters,
    PersonList,
)
from api.routes.common import ERRORS_LIST, ERRORS_READ
from api.types import utcnow

# Reads of personal data write an audit entry before answering, hence the write sessions.
households = APIRouter(prefix="/v1/households", tags=["households"])
persons = APIRouter(prefix="/v1/persons", tags=["persons"])


@households.get("", summary="List and search households", responses=ERRORS_LIST)
def list_households(
    filters: Annotated[HouseholdFilters, Query()], session: WriteSessionDep, principal: AnyUser
) -> HouseholdList:
    """Households in your camps, in registration order, or ranked by a name search.

    With `q`, households are ranked by how well a member's name matches. Callers without the
    right to read personal data get personal fields as null (listed in `redacted`); reads by
    those with it are audited.
    """
    page = service.list_households(session=session, principal=principal, filters=filters)
    return HouseholdList(items=page.items, next_cursor=page.next_cursor)


@households.get("/{household_id}", summary="Get a household", responses=ERRORS_READ)
def get_household(
    household_id: uuid.UUID, session: WriteSessionDep, principal: AnyUser
) -> HouseholdDetail:
    """The household's fields, members, latest services and referrals, open conflicts and flags.

    A household of a camp outside your scope answers 404, like one that does not exist.
    """
    return detail.get_household(
        session=session, principal=principal, household_id=household_id, today=utcnow().date()
    )


@households.get(
    "/{household_id}/history", summary="A household's version history", responses=ERRORS_LIST
)
def household_history(
    household_id: uuid.UUID,
    filters: Annotated[HistoryFilters, Query()],
    session: WriteSessionDep,
    principal: AnyUser,
) -> HistoryList:
    """Every change of the household, oldest first.

    What changed, who (the tablet operator or `user:<id>`), from which device, the writer's clock
    time and when the server stored it.
    """
    page = history.record_history(
        session=session,
        principal=principal,
        entity=Entity.HOUSEHOLD,
        record_id=household_id,
        filters=filters,
    )
    return HistoryList(items=page.items, next_cursor=page.next_cursor)


@persons.get("", summary="List and search people", responses=ERRORS_LIST)
def list_persons(
    filters: Annotated[PersonFilters, Query()], session: WriteSessionDep, principal: AnyUser
) -> PersonList:
    """People in your camps, in registration order, filtered; with `q`, ranked by name similarity.

    Personal fields are null (and listed in `redacted`) for callers without the right to read them;
    reads by those with it are audited.
    """
    page = service.list_persons(
        session=session, principal=principal, filters=filters, today=utcnow().date()
    )
    return PersonList(items=page.items, next_cursor=page.next_cursor)


@persons.get("/{person_id}", summary="Get a person", responses=ERRORS_READ)
def get_person(person_id: uuid.UUID, session: WriteSessionDep, principal: AnyUser) -> PersonDetail:
    """The person's fields, latest services and referrals, open conflicts and flags."""
    return detail.get_person(
        session=session, principal=principal, person_id=person_id, today=utcnow().date()
    )


@persons.get("/{person_id}/history", summary="A person's version history", responses=ERRORS_LIST)
def person_history(
    person_id: uuid.UUID,
    filters: Annotated[HistoryFilters, Query()],
    session: WriteSessionDep,
    principal: AnyUser,
) -> HistoryList:
    """Every change of the person, oldest first, with who, which device and when."""
    page = history.record_history(
        session=session,
        principal=principal,
        entity=Entity.PERSON,
        record_id=person_id,
        filters=filters,
    )
    return HistoryList(items=page.items, next_cursor=page.next_cursor)
