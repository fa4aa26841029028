from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Column, LargeBinary
from sqlmodel import Field, SQLModel

from api.types import UTCDateTime, utcnow


class Device(SQLModel, table=True):
    """An enrolled tablet: its public keys, camp scope and sync position."""

    id: uuid.UUID = Field(primary_key=True)
    camp_id: str = Field(foreign_key="camp.id", index=True, max_length=40)
    name: str | None = Field(default=None, max_length=64)
    status: str = Field(default="active", max_length=16)
    signing_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    exchange_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str = Field(max_length=16)
    node: str = Field(max_length=16, unique=True)
    """The HLC node id (16 hex digits) this device stamps its writes with."""
    last_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    last_batch_id: uuid.UUID | None = None
    last_sync_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    last_pull_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    enrolled_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    enrolled_by: uuid.UUID | None = None
    revoked_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    revoked_by: uuid.UUID | None = None


class EnrollmentCode(SQLModel, table=True):
    """A single-use, expiring code that lets one tablet join one camp. Stored hashed."""

    __tablename__ = "enrollment_code"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    camp_id: str = Field(foreign_key="camp.id", max_length=40)
    created_by: uuid.UUID | None = None
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    expires_at: dt.datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    used_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    device_id: uuid.UUID | None = None
