from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from api.types import BigIntPK, JSONDoc, UTCDateTime, utcnow


class AuditLog(SQLModel, table=True):
    """Append-only, hash-chained record of reads of personal data, changes, exports, enrolments.

    ``hash`` is SHA-256 over the previous entry's hash and this entry's canonical content, so
    editing or deleting any entry breaks every later link. Details hold ids, never personal data.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_camp_id_id", "camp_id", "id"),
        # "Who read this person's record?"
        Index("ix_audit_log_entity_id_id", "entity_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntPK, primary_key=True))
    at: dt.datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    actor_type: str = Field(max_length=16)
    actor_id: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=48)
    camp_id: str | None = Field(default=None, max_length=40)
    entity: str | None = Field(default=None, max_length=24)
    entity_id: str | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDoc, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
