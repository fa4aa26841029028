from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.json_schema import SkipJsonSchema

from api.conflicts.schemas import ConflictSummary
from api.events.schemas import ReferralPublic, ServicePublic
from api.flags.schemas import FlagPublic
from api.schemas import (
    CampFilter,
    Cursor,
    Day,
    HouseholdStatus,
    Need,
    PersonStatus,
    SearchText,
    Sex,
    Timestamp,
    Vulnerability,
)

_CAMP = "Only this camp (default: every camp you may see)."
_Q = (
    "Name search, tolerant of transliteration (Mohammad, Muhammad and Mohammed match each "
    "other; so do Abdul/Abdol and Stanekzai/Stanikzai). Every word must match a whole name part "
    "(given, family or father's name, Latin or local script); results are ranked by similarity, "
    "best first, and each carries its `score`. Needs the right to read personal data. At most "
    "the first 2,000 matching people are ranked: add words or filters to narrow a common name."
)
_UPDATED = "Changed at or after this time (server time): for incremental reads."
_CURSOR = "`next_cursor` of the previous page."
_LIMIT = "Page size, 1 to 500."


class HouseholdFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camp: CampFilter | SkipJsonSchema[None] = Field(None, description=_CAMP)
    needs: list[Need] = Field(
        default_factory=list,
        max_length=16,
        description="Households that have every one of these needs (repeat the parameter).",
    )
    vulnerabilities: list[Vulnerability] = Field(
        default_factory=list,
        max_length=16,
        description="Households with every one of these vulnerabilities (repeat).",
    )
    status: list[HouseholdStatus] = Field(
        default_factory=list,
        max_length=8,
        description="Any of these statuses (repeat); `deleted` selects tombstones. "
        "Default: every status except deleted.",
    )
    arrived_from: Day | SkipJsonSchema[None] = Field(
        None, description="Arrived on or after this date."
    )
    arrived_to: Day | SkipJsonSchema[None] = Field(
        None, description="Arrived on or before this date."
    )
    updated_since: Timestamp | SkipJsonSchema[None] = Field(None, description=_UPDATED)
    q: SearchText | SkipJsonSchema[None] = Field(
        None, description=_Q + " A household matches when one of its members does."
    )
    cursor: Cursor | SkipJsonSchema[None] = Field(None, description=_CURSOR)
    limit: int = Field(50, ge=1, le=500, description=_LIMIT)


class PersonFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camp: CampFilter | SkipJsonSchema[None] = Field(None, description=_CAMP)
    household_id: uuid.UUID | SkipJsonSchema[None] = Field(
        None, description="Only the members of this household."
    )
    sex: list[Sex] = Field(default_factory=list, max_length=4, description="Any of these (repeat).")
    vulnerabilities: list[Vulnerability] = Field(
        default_factory=list,
        max_length=16,
        description="People with every one of these vulnerabilities (repeat).",
    )
    status: list[PersonStatus] = Field(
        default_factory=list,
        max_length=8,
        description="Any of these statuses (repeat); `deleted` selects tombstones. "
        "Default: every status except deleted.",
    )
    updated_since: Timestamp | SkipJsonSchema[None] = Field(None, description=_UPDATED)
    q: SearchText | SkipJsonSchema[None] = Field(None, description=_Q)
    cursor: Cursor | SkipJsonSchema[None] = Field(None, description=_CURSOR)
    limit: int = Field(50, ge=1, le=500, description=_LIMIT)


_REDACTED = (
    "Personal fields withheld from you (they read null): you may not read personal data. "
    "Always every personal field of the entity, whether it held a value or not."
)
_SCORE = "Name-search similarity from 0 to 1; null without `q`."


class HouseholdPublic(BaseModel):
    id: uuid.UUID
    camp_id: str
    status: str
    deleted: bool
    head_person_id: uuid.UUID | None
    arrival_date: dt.date | None
    arrival_type: str | None
    crossing_point: str | None
    origin_country: str | None
    origin_location: str | None
    destination_province: str | None
    destination_district: str | None
    shelter_status: str | None
    shelter_location: str | None
    phone: str | None
    needs: list[str]
    vulnerabilities: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    redacted: list[str] = Field(description=_REDACTED)
    score: float | None = Field(None, description=_SCORE)


class HouseholdList(BaseModel):
    items: list[HouseholdPublic]
    next_cursor: str | None


class PersonPublic(BaseModel):
    id: uuid.UUID
    camp_id: str
    household_id: uuid.UUID | None
    relationship_to_head: str | None
    given_name: str | None
    family_name: str | None
    father_name: str | None
    given_name_local: str | None
    family_name_local: str | None
    father_name_local: str | None
    sex: str | None
    date_of_birth: dt.date | None
    birth_year: int | None
    dob_estimated: bool | None
    age_band: str = Field(description="0-4, 5-11, 12-17, 18-59, 60+ or unknown.")
    document_type: str | None
    document_number: str | None
    phone: str | None
    status: str
    deleted: bool
    vulnerabilities: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    redacted: list[str] = Field(description=_REDACTED)
    score: float | None = Field(None, description=_SCORE)


class PersonList(BaseModel):
    items: list[PersonPublic]
    next_cursor: str | None


class HouseholdDetail(HouseholdPublic):
    members: list[PersonPublic] = Field(description="Up to 100 members, the head first.")
    services: list[ServicePublic] = Field(
        description="The 50 latest deliveries; `GET /v1/services?household_id=` has them all."
    )
    referrals: list[ReferralPublic] = Field(
        description="The 50 latest referrals; `GET /v1/referrals?household_id=` has them all."
    )
    conflicts: list[ConflictSummary] = Field(
        description="Open conflicts on the household or its members."
    )
    flags: list[FlagPublic] = Field(description="Open data-quality flags about the household.")


class PersonDetail(PersonPublic):
    services: list[ServicePublic] = Field(description="The 50 latest deliveries to this person.")
    referrals: list[ReferralPublic] = Field(description="The 50 latest referrals of this person.")
    conflicts: list[ConflictSummary] = Field(description="Open conflicts on this person.")
    flags: list[FlagPublic] = Field(description="Open data-quality flags about this person.")


class HistoryFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cursor: Cursor | SkipJsonSchema[None] = Field(None, description=_CURSOR)
    limit: int = Field(50, ge=1, le=500, description=_LIMIT)


class HistoryEntry(BaseModel):
    """One version step of a record: what changed, who changed it, from which device, when."""

    seq: int = Field(description="Change-log sequence (commit order); tablets pull after it.")
    kind: str = Field(description="create, update, delete, restore, resolve...")
    recorded_at: dt.datetime = Field(description="When the server stored the change.")
    written_at: dt.datetime | None = Field(description="The writer's clock time (from the HLC).")
    hlc: str | None
    device_id: uuid.UUID | None = Field(description="The tablet; null for a server-side write.")
    actor: str | None = Field(description="The tablet's operator, or `user:<id>` of a coordinator.")
    changes: dict[str, JsonValue] = Field(
        description="Fields (and `set:element` keys) with their new values."
    )
    redacted: list[str] = Field(description="Change keys whose personal values are withheld.")


class HistoryList(BaseModel):
    items: list[HistoryEntry]
    next_cursor: str | None
