from __future__ import annotations

import datetime as dt
import uuid
from typing import Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from api.schemas import Cursor

USERNAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""What ``create_user`` accepts and what the routes' ``{username}`` must match. ASCII, and a
letter or digit first: a name such as ``..`` or ``-x`` would be rewritten by URL
normalisation or read as an option by the command line."""


class UserFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cursor: Cursor | SkipJsonSchema[None] = Field(
        None, description="`next_cursor` of the previous page."
    )
    limit: int = Field(50, ge=1, le=500, description="Page size, 1 to 500.")


class UserPublic(BaseModel):
    """A user as admins see them: no password hash, no token."""

    id: uuid.UUID
    username: str
    role: str
    all_camps: bool
    camps: list[str] = Field(description="Camps the user may see; empty with `all_camps`.")
    has_password: bool = Field(description="Whether the user can log in with a password.")
    created_at: dt.datetime
    disabled_at: dt.datetime | None = Field(
        description="Set while the user is disabled: none of their tokens work, login is refused."
    )
    live_tokens: int = Field(
        description="Tokens neither revoked nor expired (they work only while the user is enabled)."
    )


class UserList(BaseModel):
    items: list[UserPublic]
    next_cursor: str | None


class TokensRevoked(BaseModel):
    revoked: int = Field(description="How many live tokens were revoked.")
