from __future__ import annotations

import datetime as dt

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from api.types import UTCDateTime, utcnow


class Camp(SQLModel, table=True):
    """A reception camp; the unit of scope for devices, users and records."""

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=120)
    country: str | None = Field(default=None, max_length=60)
    province: str | None = Field(default=None, max_length=80)
    district: str | None = Field(default=None, max_length=80)
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
