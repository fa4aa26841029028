from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from api.schemas import LINE, NormalText

CampId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]
# One line, no control characters, no leading or trailing blanks (tablet text's rules): checked
# as sent, so that the OpenAPI limits are exactly what the server accepts; stored normalised.
Text = Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=LINE), NormalText]
Country = Annotated[str, StringConstraints(max_length=60, pattern=LINE), NormalText]
Place = Annotated[str, StringConstraints(max_length=80, pattern=LINE), NormalText]


class CampCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: CampId
    name: Text
    country: Country | None = None
    province: Place | None = None
    district: Place | None = None


class CampPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    country: str | None
    province: str | None
    district: str | None
    created_at: dt.datetime


class CampList(BaseModel):
    items: list[CampPublic]
    next_cursor: str | None = None
