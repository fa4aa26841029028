from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
)
from pydantic.json_schema import SkipJsonSchema

from api.exports.columns import HOUSEHOLD_COLUMN_NAMES, PERSON_COLUMN_NAMES
from api.schemas import (
    LINE,
    CampFilter,
    Day,
    HouseholdStatus,
    Need,
    NormalText,
    PersonStatus,
    Sex,
    Timestamp,
    Vulnerability,
    enum_schema,
    one_of,
)

HouseholdColumn = Annotated[
    str, one_of(HOUSEHOLD_COLUMN_NAMES), enum_schema(HOUSEHOLD_COLUMN_NAMES)
]
PersonColumn = Annotated[str, one_of(PERSON_COLUMN_NAMES), enum_schema(PERSON_COLUMN_NAMES)]
# One line of tablet-like text (api.schemas.LINE): no control characters, no surrounding spaces.
Purpose = Annotated[str, StringConstraints(min_length=10, max_length=200, pattern=LINE), NormalText]
_PURPOSE = (
    "Why the data leaves the system (10 to 200 characters on one line), e.g. 'WFP food "
    "distribution round 3, data-sharing agreement 2026-014'. Recorded in the audit log: name "
    "no one."
)
_COLUMNS = (
    "Columns, in order (duplicates are dropped). Default: every non-personal column. Personal "
    "columns (names, dates and years of birth, document numbers, phones) need the `pii:export` "
    "scope; without it ids are replaced by stable pseudonyms."
)


class HouseholdExportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    needs: list[Need] = Field(
        default_factory=list, max_length=16, description="Every one of these."
    )
    vulnerabilities: list[Vulnerability] = Field(
        default_factory=list, max_length=16, description="Every one of these."
    )
    status: list[HouseholdStatus] = Field(
        default_factory=list, max_length=8, description="Any of these; default: all but deleted."
    )
    arrived_from: Day | SkipJsonSchema[None] = None
    arrived_to: Day | SkipJsonSchema[None] = None
    updated_since: Timestamp | SkipJsonSchema[None] = None


class PersonExportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    household_id: uuid.UUID | SkipJsonSchema[None] = None
    sex: list[Sex] = Field(default_factory=list, max_length=4, description="Any of these.")
    vulnerabilities: list[Vulnerability] = Field(
        default_factory=list, max_length=16, description="Every one of these."
    )
    status: list[PersonStatus] = Field(
        default_factory=list, max_length=8, description="Any of these; default: all but deleted."
    )
    updated_since: Timestamp | SkipJsonSchema[None] = None


class HouseholdExport(BaseModel):
    """A CSV of households, one row each (a distribution list)."""

    model_config = ConfigDict(extra="forbid")

    entity: Literal["household"] = "household"
    camp: CampFilter
    purpose: Purpose = Field(description=_PURPOSE)
    filters: HouseholdExportFilters = Field(default_factory=HouseholdExportFilters)
    columns: list[HouseholdColumn] = Field(
        default_factory=list, max_length=64, description=_COLUMNS
    )


class PersonExport(BaseModel):
    """A CSV of people, one row each."""

    model_config = ConfigDict(extra="forbid")

    entity: Literal["person"]
    camp: CampFilter
    purpose: Purpose = Field(description=_PURPOSE)
    filters: PersonExportFilters = Field(default_factory=PersonExportFilters)
    columns: list[PersonColumn] = Field(default_factory=list, max_length=64, description=_COLUMNS)


def _entity_of(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("entity", "household"))
    return str(getattr(value, "entity", "household"))


ExportRequest = Annotated[
    Annotated[HouseholdExport, Tag("household")] | Annotated[PersonExport, Tag("person")],
    Discriminator(_entity_of),
]
"""``entity`` picks the kind of export; it defaults to households."""
