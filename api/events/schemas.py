from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from api.schemas import (
    CampFilter,
    Cursor,
    ReferralCategory,
    ReferralStatus,
    ReferralUrgency,
    ServiceName,
    Timestamp,
)

_CAMP = "Only this camp (default: every camp you may see)."
_CURSOR = "`next_cursor` of the previous page."
_LIMIT = "Page size, 1 to 500."


class ServiceFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camp: CampFilter | SkipJsonSchema[None] = Field(None, description=_CAMP)
    household_id: uuid.UUID | SkipJsonSchema[None] = Field(
        None, description="Only deliveries to this household."
    )
    service: list[ServiceName] = Field(
        default_factory=list, max_length=16, description="Only these services (repeat)."
    )
    delivered_from: Timestamp | SkipJsonSchema[None] = Field(
        None, description="Delivered at or after this time."
    )
    delivered_to: Timestamp | SkipJsonSchema[None] = Field(
        None, description="Delivered before this time."
    )
    include_voided: bool = Field(
        False, description="Include deliveries voided as recorded in error."
    )
    cursor: Cursor | SkipJsonSchema[None] = Field(None, description=_CURSOR)
    limit: int = Field(50, ge=1, le=500, description=_LIMIT)


class ServicePublic(BaseModel):
    id: uuid.UUID
    camp_id: str
    household_id: uuid.UUID
    person_id: uuid.UUID | None
    service: str
    quantity: float
    unit: str | None
    delivered_at: dt.datetime
    device_id: uuid.UUID | None
    voided: bool
    void_reason: str | None


class ServiceList(BaseModel):
    items: list[ServicePublic]
    next_cursor: str | None


class ReferralFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camp: CampFilter | SkipJsonSchema[None] = Field(None, description=_CAMP)
    household_id: uuid.UUID | SkipJsonSchema[None] = Field(
        None, description="Only referrals of this household or its members."
    )
    category: list[ReferralCategory] = Field(
        default_factory=list, max_length=8, description="Only these categories (repeat)."
    )
    urgency: list[ReferralUrgency] = Field(
        default_factory=list, max_length=8, description="Only these urgencies (repeat)."
    )
    status: list[ReferralStatus] = Field(
        default_factory=list, max_length=8, description="Only these statuses (repeat)."
    )
    created_from: Timestamp | SkipJsonSchema[None] = Field(
        None, description="Recorded at or after this time."
    )
    created_to: Timestamp | SkipJsonSchema[None] = Field(
        None, description="Recorded before this time."
    )
    include_voided: bool = Field(
        False, description="Include referrals voided as recorded in error."
    )
    cursor: Cursor | SkipJsonSchema[None] = Field(None, description=_CURSOR)
    limit: int = Field(50, ge=1, le=500, description=_LIMIT)


class ReferralPublic(BaseModel):
    id: uuid.UUID
    camp_id: str
    household_id: uuid.UUID
    person_id: uuid.UUID | None
    category: str
    urgency: str
    status: str
    created_at: dt.datetime
    device_id: uuid.UUID | None
    voided: bool
    void_reason: str | None


class ReferralList(BaseModel):
    items: list[ReferralPublic]
    next_cursor: str | None
