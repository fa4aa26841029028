"""The columns an export may hold, how each is read, and which are personal.

A column is personal when the protocol's catalogue marks its field ``pii`` (names, dates and
years of birth, document numbers, phones); a household's ``head_*`` columns are the head
person's fields. Record ids are not personal columns, but callers without ``pii:export`` get
pseudonyms in their place (:mod:`api.exports.pseudonyms`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from campsync_sync import Entity, pii_fields
from sqlalchemy import ColumnElement, Table, false, func, select

from api.households.ages import age_band_sql
from api.households.views import HOUSEHOLD, PERSON

HEAD: Final[Table] = PERSON.alias("head")  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class ExportColumn:
    name: str
    expression: Callable[[dt.date], ColumnElement[Any]]
    personal: bool = False
    needs_head: bool = False
    pseudonymise: str | None = None
    """The entity whose id this column holds: replaced by a pseudonym without the scope."""


def _plain(table: Table, name: str) -> Callable[[dt.date], ColumnElement[Any]]:
    return lambda _: table.c[name].label(name)


def _members(_: dt.date) -> ColumnElement[Any]:
    return (
        select(func.count())
        .where(PERSON.c.household_id == HOUSEHOLD.c.id, PERSON.c.is_deleted == false())
        .scalar_subquery()
        .label("members")
    )


_HOUSEHOLD_FIELDS: Final = (
    "camp_id",
    "status",
    "arrival_date",
    "arrival_type",
    "crossing_point",
    "origin_country",
    "origin_location",
    "destination_province",
    "destination_district",
    "shelter_status",
    "shelter_location",
    "needs",
    "vulnerabilities",
    "phone",
    "created_at",
    "updated_at",
)
_HEAD_FIELDS: Final = (
    "given_name",
    "family_name",
    "father_name",
    "given_name_local",
    "family_name_local",
    "father_name_local",
    "sex",
    "date_of_birth",
    "birth_year",
    "document_type",
    "document_number",
    "phone",
)
_PERSON_FIELDS: Final = (
    "camp_id",
    "relationship_to_head",
    "sex",
    "status",
    "vulnerabilities",
    "given_name",
    "family_name",
    "father_name",
    "given_name_local",
    "family_name_local",
    "father_name_local",
    "date_of_birth",
    "birth_year",
    "dob_estimated",
    "document_type",
    "document_number",
    "phone",
    "created_at",
    "updated_at",
)


def _head(name: str) -> Callable[[dt.date], ColumnElement[Any]]:
    return lambda _: HEAD.c[name].label(f"head_{name}")


def _household_columns() -> dict[str, ExportColumn]:
    personal = pii_fields(Entity.HOUSEHOLD)
    head_personal = pii_fields(Entity.PERSON)
    columns = [
        ExportColumn(
            "household_id", lambda _: HOUSEHOLD.c.id.label("household_id"), pseudonymise="household"
        ),
        *(ExportColumn(n, _plain(HOUSEHOLD, n), personal=n in personal) for n in _HOUSEHOLD_FIELDS),
        ExportColumn("members", _members),
        *(
            ExportColumn(f"head_{n}", _head(n), personal=n in head_personal, needs_head=True)
            for n in _HEAD_FIELDS
        ),
        ExportColumn(
            "head_age_band",
            lambda today: age_band_sql(HEAD.c.date_of_birth, HEAD.c.birth_year, today).label(
                "head_age_band"
            ),
            needs_head=True,
        ),
    ]
    return {c.name: c for c in columns}


def _person_columns() -> dict[str, ExportColumn]:
    personal = pii_fields(Entity.PERSON)
    columns = [
        ExportColumn("person_id", lambda _: PERSON.c.id.label("person_id"), pseudonymise="person"),
        ExportColumn(
            "household_id",
            lambda _: PERSON.c.household_id.label("household_id"),
            pseudonymise="household",
        ),
        *(ExportColumn(n, _plain(PERSON, n), personal=n in personal) for n in _PERSON_FIELDS),
        ExportColumn(
            "age_band",
            lambda today: age_band_sql(PERSON.c.date_of_birth, PERSON.c.birth_year, today).label(
                "age_band"
            ),
        ),
    ]
    return {c.name: c for c in columns}


HOUSEHOLD_COLUMNS: Final = _household_columns()
PERSON_COLUMNS: Final = _person_columns()
HOUSEHOLD_COLUMN_NAMES: Final = tuple(HOUSEHOLD_COLUMNS)
PERSON_COLUMN_NAMES: Final = tuple(PERSON_COLUMNS)
