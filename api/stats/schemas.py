from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from api.schemas import Day


class StatsFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    services_from: Day | SkipJsonSchema[None] = Field(
        None, description="First day (UTC) of `services_per_day`; default 29 days before the last."
    )
    services_to: Day | SkipJsonSchema[None] = Field(
        None, description="Last day (UTC) of `services_per_day`, included; default today."
    )


class DayOfServices(BaseModel):
    date: dt.date
    deliveries: int
    quantity: float
    by_service: dict[str, int] = Field(description="Deliveries per service that day.")


class DeviceSummary(BaseModel):
    id: uuid.UUID
    name: str | None
    status: str
    last_seq: int = Field(description="The last batch sequence number the server accepted.")
    last_sync_at: dt.datetime | None
    last_pull_at: dt.datetime | None
    revoked_at: dt.datetime | None


class CampStats(BaseModel):
    """A camp at a glance: active, non-deleted households and people, needs and deliveries."""

    camp: str
    as_of: dt.date = Field(description="The day (UTC) ages are computed for.")
    households: int = Field(description="Active households (tombstones excluded).")
    people: int = Field(description="Active people (tombstones excluded).")
    people_by_sex_age: dict[str, dict[str, int]] = Field(
        description="People by sex (female, male, other, unknown) and age band "
        "(0-4, 5-11, 12-17, 18-59, 60+, unknown)."
    )
    needs: dict[str, int] = Field(description="Active households with each need.")
    vulnerabilities: dict[str, int] = Field(
        description="Active households with each household vulnerability."
    )
    person_vulnerabilities: dict[str, int] = Field(
        description="Active people with each personal vulnerability."
    )
    services_per_day: list[DayOfServices] = Field(
        description="Days with at least one delivery (voided ones excluded), oldest first."
    )
    open_conflicts: int
    open_flags: int
    devices: list[DeviceSummary] = Field(description="Tablets enrolled for the camp.")
