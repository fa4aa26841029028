"""Households and persons for coordinators: filtered lists and name search.

Lists are keyset-paginated in id order (UUIDv7: registration order) over the ``(camp_id, id)``
indexes; a name search ranks its matches instead (see :mod:`api.households.search`). Every call
that can show personal data to a caller allowed to read it is written to the audit log with the
ids it returned, before the answer leaves: no audit entry, no data. Details are in
:mod:`api.households.detail`, versions in :mod:`api.households.history`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from campsync_sync import Entity
from sqlalchemy import ColumnElement, Table, and_, false, or_, select
from sqlmodel import Session

from api.audit import service as audit
from api.camps.scope import camps_to_read, in_camps
from api.errors import Forbidden, NotFound
from api.households import search
from api.households.schemas import (
    HouseholdFilters,
    HouseholdPublic,
    PersonFilters,
    PersonPublic,
)
from api.households.views import (
    HOUSEHOLD,
    HOUSEHOLD_COLUMNS,
    PERSON,
    PERSON_COLUMNS,
    household_view,
    person_view,
)
from api.pagination import Page, decode_cursor, page_of
from api.principal import Principal
from api.schemas import clamp_date, clamp_datetime
from api.sql import contains_all


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def status_condition(table: Table, statuses: Sequence[str]) -> ColumnElement[bool]:
    """Default: live records of any status; ``deleted`` asks for tombstones."""
    if not statuses:
        return table.c.is_deleted == false()
    live = [s for s in statuses if s != "deleted"]
    either: list[ColumnElement[bool]] = []
    if live:
        either.append(and_(table.c.is_deleted == false(), table.c.status.in_(live)))
    if "deleted" in statuses:
        either.append(table.c.is_deleted.is_(True))
    return or_(*either)


def household_conditions(
    session: Session, principal: Principal, filters: HouseholdFilters
) -> list[ColumnElement[bool]]:
    """The SQL conditions of a household filter, camp scope included (exports reuse them)."""
    dialect = _dialect(session)
    camps = camps_to_read(session, principal, filters.camp)
    conditions = [
        in_camps(HOUSEHOLD.c.camp_id, camps),
        status_condition(HOUSEHOLD, filters.status),
        contains_all(dialect, HOUSEHOLD.c.needs, sorted(set(filters.needs))),
        contains_all(dialect, HOUSEHOLD.c.vulnerabilities, sorted(set(filters.vulnerabilities))),
    ]
    if filters.arrived_from is not None:
        conditions.append(HOUSEHOLD.c.arrival_date >= clamp_date(filters.arrived_from))
    if filters.arrived_to is not None:
        conditions.append(HOUSEHOLD.c.arrival_date <= clamp_date(filters.arrived_to))
    if filters.updated_since is not None:
        conditions.append(HOUSEHOLD.c.updated_at >= clamp_datetime(filters.updated_since))
    return conditions


def _require_search_right(principal: Principal, q: str | None) -> None:
    # A name search answers "is this person here?": it is a read of personal data.
    if q is not None and not principal.reads_pii:
        raise Forbidden("searching by name needs the right to read personal data")


def list_households(
    *, session: Session, principal: Principal, filters: HouseholdFilters
) -> Page[HouseholdPublic]:
    """Households matching the filters, in registration order, or ranked by a name search."""
    _require_search_right(principal, filters.q)
    conditions = household_conditions(session, principal, filters)
    if filters.q is not None:
        camps = camps_to_read(session, principal, filters.camp)
        people = search.find_people(
            session, filters.q, [in_camps(PERSON.c.camp_id, camps), PERSON.c.is_deleted == false()]
        )
        scores = search.best_by_household(people)
        matching = session.execute(
            select(HOUSEHOLD.c.id).where(*conditions, HOUSEHOLD.c.id.in_(sorted(scores)))
        ).scalars()
        ranked = search.rank(
            {i: scores[i] for i in matching},
            kind="households-q",
            cursor=filters.cursor,
            limit=filters.limit,
        )
        rows = _rows_by_id(session, HOUSEHOLD, HOUSEHOLD_COLUMNS, ranked.ids)
        items = [household_view(principal, rows[i], ranked.scores[i]) for i in ranked.ids]
        page = Page(items, ranked.next_cursor)
    else:
        if filters.cursor is not None:
            (after,) = decode_cursor("households", filters.cursor, (uuid.UUID,))
            conditions.append(HOUSEHOLD.c.id > after)
        result = session.execute(
            select(*HOUSEHOLD_COLUMNS)
            .where(*conditions)
            .order_by(HOUSEHOLD.c.id)
            .limit(filters.limit + 1)
        ).mappings()
        page = page_of(
            [household_view(principal, r) for r in result],
            filters.limit,
            "households",
            lambda h: (h.id,),
        )
    _audit_list(session, principal, "household.list", filters, [h.id for h in page.items])
    return page


def person_conditions(
    session: Session, principal: Principal, filters: PersonFilters
) -> list[ColumnElement[bool]]:
    camps = camps_to_read(session, principal, filters.camp)
    conditions = [
        in_camps(PERSON.c.camp_id, camps),
        status_condition(PERSON, filters.status),
        contains_all(
            _dialect(session), PERSON.c.vulnerabilities, sorted(set(filters.vulnerabilities))
        ),
    ]
    if filters.household_id is not None:
        conditions.append(PERSON.c.household_id == filters.household_id)
    if filters.sex:
        conditions.append(PERSON.c.sex.in_(sorted(set(filters.sex))))
    if filters.updated_since is not None:
        conditions.append(PERSON.c.updated_at >= clamp_datetime(filters.updated_since))
    return conditions


def list_persons(
    *, session: Session, principal: Principal, filters: PersonFilters, today: dt.date
) -> Page[PersonPublic]:
    """People matching the filters, in registration order, or ranked by a name search."""
    _require_search_right(principal, filters.q)
    conditions = person_conditions(session, principal, filters)
    if filters.q is not None:
        scores = search.by_person(search.find_people(session, filters.q, conditions))
        ranked = search.rank(scores, kind="persons-q", cursor=filters.cursor, limit=filters.limit)
        rows = _rows_by_id(session, PERSON, PERSON_COLUMNS, ranked.ids)
        items = [person_view(principal, rows[i], today, ranked.scores[i]) for i in ranked.ids]
        page = Page(items, ranked.next_cursor)
    else:
        if filters.cursor is not None:
            (after,) = decode_cursor("persons", filters.cursor, (uuid.UUID,))
            conditions.append(PERSON.c.id > after)
        result = session.execute(
            select(*PERSON_COLUMNS)
            .where(*conditions)
            .order_by(PERSON.c.id)
            .limit(filters.limit + 1)
        ).mappings()
        page = page_of(
            [person_view(principal, r, today) for r in result],
            filters.limit,
            "persons",
            lambda p: (p.id,),
        )
    _audit_list(session, principal, "person.list", filters, [p.id for p in page.items])
    return page


def _rows_by_id(
    session: Session, table: Table, columns: Sequence[Any], ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Mapping[Any, Any]]:
    if not ids:
        return {}
    result = session.execute(select(*columns).where(table.c.id.in_(list(ids)))).mappings()
    return {row["id"]: row for row in result}


def _audit_list(
    session: Session,
    principal: Principal,
    action: str,
    filters: HouseholdFilters | PersonFilters,
    ids: list[uuid.UUID],
) -> None:
    if not principal.reads_pii:
        return
    used = filters.model_dump(mode="json", exclude={"q", "cursor", "limit"}, exclude_defaults=True)
    audit.record(
        session,
        principal,
        action,
        camp_id=filters.camp,
        details={"filters": used, "search": filters.q is not None, "count": len(ids), "ids": ids},
    )
    session.commit()


def load_row(
    session: Session,
    principal: Principal,
    table: Table,
    columns: Sequence[Any],
    what: str,
    record_id: uuid.UUID,
) -> Mapping[Any, Any]:
    row = session.execute(select(*columns).where(table.c.id == record_id)).mappings().first()
    if row is None:
        raise NotFound(f"{what} not found")
    principal.require_camp(row["camp_id"], what=what)
    return row


def require_record(
    *, session: Session, principal: Principal, entity: Entity, record_id: uuid.UUID
) -> str:
    """The record's camp, after checking the caller may see it (404 otherwise)."""
    table = HOUSEHOLD if entity is Entity.HOUSEHOLD else PERSON
    row = load_row(
        session, principal, table, (table.c.id, table.c.camp_id), entity.value, record_id
    )
    return str(row["camp_id"])
