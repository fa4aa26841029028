"""Sync bookkeeping: batches and their receipts, quarantine, the commit counter, server keys."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.types import JSONDoc, UTCDateTime, utcnow


class Batch(SQLModel, table=True):
    """A batch the server accepted (applied or quarantined), with the receipt it answered.

    The same batch again is answered from here, before decrypting anything.
    """

    __table_args__ = (UniqueConstraint("device_id", "seq"),)

    id: uuid.UUID = Field(primary_key=True)
    device_id: uuid.UUID = Field(foreign_key="device.id")
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    digest: str = Field(max_length=64)
    """SHA-256 of the sealed bytes: a retry must send the identical envelope."""
    status: str = Field(max_length=16)
    op_count: int = 0
    backlog: int = 0
    """Operations still waiting on the tablet after this batch, as it reported."""
    commit_seq: int | None = Field(default=None, sa_column=Column(BigInteger))
    receipt: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDoc, nullable=False))
    received_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class Quarantine(SQLModel, table=True):
    """Operations or whole batches kept out of the merge: rejected, or from a revoked device."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    device_id: uuid.UUID = Field(foreign_key="device.id", index=True)
    batch_id: uuid.UUID
    op_index: int | None = None
    op_id: uuid.UUID | None = None
    reason: str = Field(max_length=32)
    detail: str | None = Field(default=None, max_length=200)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """The operation's JSON, or the whole sealed envelope of a quarantined batch."""
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    released_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class SyncCounter(SQLModel, table=True):
    """Named counters; ``change_seq`` orders the change log in commit order."""

    __tablename__ = "sync_counter"

    name: str = Field(primary_key=True, max_length=32)
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class ServerKey(SQLModel, table=True):
    """A server key pair.

    ``private_key`` is NULL when keys live in the data dir, or once the key is destroyed.
    """

    __tablename__ = "server_key"

    kid: str = Field(primary_key=True, max_length=16)
    purpose: str = Field(max_length=16)
    """``signing`` (Ed25519, pinned by tablets) or ``transport`` (HPKE recipient)."""
    kind: str = Field(max_length=24)
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    private_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    status: str = Field(default="active", max_length=16)
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    retired_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    destroy_after: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    destroyed_at: dt.datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class ServerMeta(SQLModel, table=True):
    """Deployment-wide facts such as the deployment id."""

    __tablename__ = "server_meta"

    name: str = Field(primary_key=True, max_length=32)
    value: str = Field(max_length=255)
