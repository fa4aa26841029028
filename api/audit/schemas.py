from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from api.schemas import CampFilter, Cursor, Timestamp

Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]


class AuditFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camp: CampFilter | SkipJsonSchema[None] = Field(None, description="Entries about this camp.")
    action: Token | SkipJsonSchema[None] = Field(
        None, description="One action, e.g. `person.read`, `conflict.resolve`, `export.create`."
    )
    actor: Token | SkipJsonSchema[None] = Field(
        None, description="One actor, e.g. `user:<id>` or `cli`."
    )
    entity: Token | SkipJsonSchema[None] = Field(None, description="e.g. `household`, `conflict`.")
    entity_id: Token | SkipJsonSchema[None] = Field(
        None, description="Entries about this record (its id)."
    )
    since: Timestamp | SkipJsonSchema[None] = Field(None, description="At or after this time.")
    until: Timestamp | SkipJsonSchema[None] = Field(None, description="Before this time.")
    cursor: Cursor | SkipJsonSchema[None] = Field(
        None, description="`next_cursor` of the previous page."
    )
    limit: int = Field(50, ge=1, le=500, description="Page size, 1 to 500.")


class AuditEntry(BaseModel):
    id: int
    at: dt.datetime
    actor_type: str
    actor_id: str | None
    action: str
    camp_id: str | None
    entity: str | None
    entity_id: str | None
    details: dict[str, JsonValue] = Field(
        description="Ids, counts and choices; never personal data."
    )
    prev_hash: str
    hash: str = Field(description="SHA-256 over `prev_hash` and this entry's content.")


class AuditList(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None
