from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from api.types import UTCDateTime, utcnow


class AppUser(SQLModel, table=True):
    """A person using the HTTP API: an admin, a coordinator or an integrator."""

    __tablename__ = "app_user"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    all_camps: bool = False
    password_hash: str | None = Field(default=None, max_length=255)
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    disabled_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class UserCamp(SQLModel, table=True):
    """Camps a coordinator or integrator may see."""

    __tablename__ = "user_camp"

    user_id: uuid.UUID = Field(foreign_key="app_user.id", primary_key=True, ondelete="CASCADE")
    camp_id: str = Field(foreign_key="camp.id", primary_key=True, max_length=40)


class ApiToken(SQLModel, table=True):
    """A bearer token. Only its SHA-256 is stored: tokens are 256-bit random strings."""

    __tablename__ = "api_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    name: str | None = Field(default=None, max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    expires_at: dt.datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    """Every token expires (revision 0005 gave the older ones created_at + 90 days)."""
    revoked_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    last_used_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
