from __future__ import annotations

import datetime as dt
import uuid

from campsync_sync import EnrollmentInvite
from pydantic import BaseModel, ConfigDict, Field


class EnrollmentCodeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    """Defaults to ``CAMPSYNC_ENROLLMENT_CODE_TTL_MINUTES`` (a day)."""


class EnrollmentCodePublic(BaseModel):
    code: str
    camp_id: str
    expires_at: dt.datetime
    invite: EnrollmentInvite
    qr_payload: str
    """The invite as compact JSON, to render as a QR code."""


class DevicePublic(BaseModel):
    id: uuid.UUID
    camp_id: str
    name: str | None
    status: str
    key_id: str
    signing_key: str | None = None
    """Public keys (base64); absent for integrators."""
    exchange_key: str | None = None
    enrolled_at: dt.datetime
    revoked_at: dt.datetime | None
    last_sync_at: dt.datetime | None
    last_pull_at: dt.datetime | None
    last_seq: int
    backlog: int
    """Operations waiting on the tablet, as its last batch reported."""
    quarantined_batches: int
    rejected_operations: int


class DeviceList(BaseModel):
    items: list[DevicePublic]
