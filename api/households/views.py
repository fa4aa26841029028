"""Rows to public models: the columns each list reads, and redaction on the way out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from campsync_sync import Entity
from sqlalchemy import Column, Table

from api.households.ages import age_band
from api.households.schemas import HouseholdPublic, PersonPublic
from api.principal import Principal
from api.redaction import redact_record
from api.registry.models import Household, Person

HOUSEHOLD: Final[Table] = Household.__table__  # type: ignore[attr-defined]
PERSON: Final[Table] = Person.__table__  # type: ignore[attr-defined]

_HOUSEHOLD_FIELDS: Final = (
    "id",
    "camp_id",
    "status",
    "is_deleted",
    "head_person_id",
    "arrival_date",
    "arrival_type",
    "crossing_point",
    "origin_country",
    "origin_location",
    "destination_province",
    "destination_district",
    "shelter_status",
    "shelter_location",
    "phone",
    "needs",
    "vulnerabilities",
    "created_at",
    "updated_at",
)
_PERSON_FIELDS: Final = (
    "id",
    "camp_id",
    "household_id",
    "relationship_to_head",
    "given_name",
    "family_name",
    "father_name",
    "given_name_local",
    "family_name_local",
    "father_name_local",
    "sex",
    "date_of_birth",
    "birth_year",
    "dob_estimated",
    "document_type",
    "document_number",
    "phone",
    "status",
    "is_deleted",
    "vulnerabilities",
    "created_at",
    "updated_at",
)
# What lists read: never the merge bookkeeping (clocks), which can be large.
HOUSEHOLD_COLUMNS: Final[tuple[Column[Any], ...]] = tuple(HOUSEHOLD.c[n] for n in _HOUSEHOLD_FIELDS)
PERSON_COLUMNS: Final[tuple[Column[Any], ...]] = tuple(PERSON.c[n] for n in _PERSON_FIELDS)


def household_view(
    principal: Principal, row: Mapping[Any, Any], score: float | None = None
) -> HouseholdPublic:
    values = {n: row[n] for n in _HOUSEHOLD_FIELDS if n != "is_deleted"}
    shown, redacted = redact_record(principal, Entity.HOUSEHOLD, values)
    return HouseholdPublic(**shown, deleted=bool(row["is_deleted"]), redacted=redacted, score=score)


def person_view(
    principal: Principal, row: Mapping[Any, Any], today: dt.date, score: float | None = None
) -> PersonPublic:
    values = {n: row[n] for n in _PERSON_FIELDS if n != "is_deleted"}
    band = age_band(row["date_of_birth"], row["birth_year"], today)
    shown, redacted = redact_record(principal, Entity.PERSON, values)
    return PersonPublic(
        **shown, age_band=band, deleted=bool(row["is_deleted"]), redacted=redacted, score=score
    )
