from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

CampId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]
# One line, no leading or trailing blanks: checked as sent, so that the OpenAPI limits are
# exactly what the server accepts.
_LINE = r"^\S(?:.*\S)?$"
Text = Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=_LINE)]


class CampCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: CampId
    name: Text
    country: Annotated[str, StringConstraints(max_length=60, pattern=_LINE)] | None = None
    province: Annotated[str, StringConstraints(max_length=80, pattern=_LINE)] | None = None
    district: Annotated[str, StringConstraints(max_length=80, pattern=_LINE)] | None = None


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
