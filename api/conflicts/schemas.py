from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.json_schema import SkipJsonSchema

from api.schemas import CampFilter, Cursor

ConflictKind = Literal["field", "delete", "edit_on_deleted"]
ConflictStatus = Literal["open", "resolved"]
RegistryEntity = Literal["household", "person"]


class ConflictFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camp: CampFilter | SkipJsonSchema[None] = Field(
        None, description="Only this camp (default: every camp you may see)."
    )
    status: ConflictStatus | SkipJsonSchema[None] = Field(
        "open", description="`open` (the default) or `resolved`."
    )
    entity: RegistryEntity | SkipJsonSchema[None] = Field(
        None, description="Only conflicts on households, or only on persons."
    )
    entity_id: uuid.UUID | SkipJsonSchema[None] = Field(
        None, description="Only conflicts on this household or person."
    )
    kind: ConflictKind | SkipJsonSchema[None] = Field(
        None,
        description="`field` (two values of an identity field), `delete` (a delete won over "
        "concurrent edits) or `edit_on_deleted` (an edit reached a deleted record).",
    )
    cursor: Cursor | SkipJsonSchema[None] = Field(
        None, description="`next_cursor` of the previous page."
    )
    limit: int = Field(50, ge=1, le=500, description="Page size, 1 to 500.")


class ConflictSummary(BaseModel):
    """A conflict without the clashing values (lists hold no personal data)."""

    id: uuid.UUID
    camp_id: str
    kind: ConflictKind
    entity: RegistryEntity
    entity_id: uuid.UUID
    field: str | None
    fields: list[str]
    winner: Literal["current", "incoming"]
    status: ConflictStatus
    created_at: dt.datetime
    resolved_at: dt.datetime | None


class ConflictList(BaseModel):
    items: list[ConflictSummary]
    next_cursor: str | None


class ConflictSide(BaseModel):
    """One side of a clash: the value, its clock, who wrote it and when."""

    value: JsonValue = Field(description="Redacted (null) without the right to read personal data.")
    hlc: str | None
    written_at: dt.datetime | None = Field(description="The writer's clock time (from the HLC).")
    device_id: uuid.UUID | None
    operator: str | None


class ConflictResolution(BaseModel):
    choice: Literal["current", "incoming", "value"]
    resolved_by: uuid.UUID | None
    commit_seq: int | None = Field(description="Change-log sequence of the resolving write.")
    hlc: str | None = Field(description="Server clock of the resolving write.")


class ConflictDetail(ConflictSummary):
    current: ConflictSide = Field(description="What the server held when the clash arrived.")
    incoming: ConflictSide = Field(description="What the tablet sent.")
    record_now: JsonValue = Field(
        description='The record\'s value of the field(s) today; `{"deleted": true}` marks a '
        "deleted record."
    )
    resolution: ConflictResolution | None
    redacted: list[str] = Field(description="Parts withheld: you may not read personal data.")


class KeepCurrent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choice: Literal["current"]


class TakeIncoming(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choice: Literal["incoming"]


class EnterValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    choice: Literal["value"]
    value: JsonValue = Field(description="The field's new value; null clears it.")


ConflictResolve = Annotated[KeepCurrent | TakeIncoming | EnterValue, Field(discriminator="choice")]
