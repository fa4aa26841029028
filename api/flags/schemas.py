from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from api.schemas import CampFilter, Cursor

FlagStatus = Literal["open", "resolved"]
FlagKind = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]


class FlagFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camp: CampFilter | SkipJsonSchema[None] = Field(
        None, description="Only this camp (default: every camp you may see)."
    )
    status: FlagStatus | SkipJsonSchema[None] = Field(
        "open", description="`open` (the default) or `resolved`."
    )
    kind: FlagKind | SkipJsonSchema[None] = Field(
        None,
        description="A kind of flag, such as `double_distribution` (a service delivered again "
        "inside its entitlement window) or `clock_clamped` (a tablet clock far ahead of the "
        "server's).",
    )
    household_id: uuid.UUID | SkipJsonSchema[None] = Field(
        None, description="Only flags about this household."
    )
    cursor: Cursor | SkipJsonSchema[None] = Field(
        None, description="`next_cursor` of the previous page."
    )
    limit: int = Field(50, ge=1, le=500, description="Page size, 1 to 500.")


class FlagPublic(BaseModel):
    id: uuid.UUID
    camp_id: str
    kind: str
    entity: str
    entity_id: uuid.UUID
    household_id: uuid.UUID | None
    device_id: uuid.UUID | None
    details: dict[str, JsonValue] = Field(description="Ids and counts, such as `related_ids`.")
    status: str
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_by: uuid.UUID | None
    resolution: str | None


class FlagList(BaseModel):
    items: list[FlagPublic]
    next_cursor: str | None


class FlagResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Literal["confirmed", "dismissed"] = Field(
        description="`confirmed`: the problem was real (void the wrong delivery from a tablet); "
        "`dismissed`: not a problem, e.g. a second ration that was due."
    )
