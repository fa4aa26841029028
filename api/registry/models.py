"""Registry records (merged field by field), events (insert-only), their history and reviews.

Registry rows keep each scalar field's HLC in ``clocks`` and each set element's state in
``set_clocks`` (``{"needs": {"food": [true, "<hlc>"]}}``); the plain columns hold the merged
values so that filters, statistics and exports are ordinary SQL. A tombstone keeps its row:
``deleted_hlc`` later than ``restored_hlc`` means deleted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, Column, Date, Index, String
from sqlmodel import Field, SQLModel

from api.types import BigIntPK, JSONDoc, UTCDateTime, utcnow


def _hlc(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(String(32), nullable=nullable))


def _json(default: Any = dict) -> Any:
    return Field(default_factory=default, sa_column=Column(JSONDoc, nullable=False))


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


def _when() -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime))


class Household(SQLModel, table=True):
    __table_args__ = (
        Index("ix_household_camp_id_id", "camp_id", "id"),
        Index("ix_household_camp_id_updated_at", "camp_id", "updated_at"),
    )

    id: uuid.UUID = Field(primary_key=True)
    camp_id: str = Field(foreign_key="camp.id", max_length=40)
    head_person_id: uuid.UUID | None = None
    arrival_date: dt.date | None = Field(default=None, sa_column=Column(Date))
    arrival_type: str | None = Field(default=None, max_length=16)
    crossing_point: str | None = Field(default=None, max_length=120)
    origin_country: str | None = Field(default=None, max_length=120)
    origin_location: str | None = Field(default=None, max_length=120)
    destination_province: str | None = Field(default=None, max_length=120)
    destination_district: str | None = Field(default=None, max_length=120)
    shelter_status: str | None = Field(default=None, max_length=16)
    shelter_location: str | None = Field(default=None, max_length=120)
    phone: str | None = Field(default=None, max_length=24)
    status: str = Field(default="active", max_length=16)
    needs: list[str] = _json(list)
    vulnerabilities: list[str] = _json(list)
    clocks: dict[str, str] = _json()
    set_clocks: dict[str, Any] = _json()
    deleted_hlc: str | None = _hlc()
    restored_hlc: str | None = _hlc()
    is_deleted: bool = False
    erased_at: dt.datetime | None = _when()
    created_by_device: uuid.UUID | None = None
    created_at: dt.datetime = _created()
    updated_at: dt.datetime = _created()


class Person(SQLModel, table=True):
    __table_args__ = (
        Index("ix_person_camp_id_id", "camp_id", "id"),
        Index("ix_person_household_id", "household_id"),
        Index("ix_person_camp_id_updated_at", "camp_id", "updated_at"),
        # Name search looks keys up with JSONB containment (@>), which a GIN index serves.
        # SQLite cannot index inside JSON: there it would only slow every write down.
        Index("ix_person_name_keys", "name_keys", postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    camp_id: str = Field(foreign_key="camp.id", max_length=40)
    household_id: uuid.UUID | None = None
    relationship_to_head: str | None = Field(default=None, max_length=24)
    given_name: str | None = Field(default=None, max_length=120)
    family_name: str | None = Field(default=None, max_length=120)
    father_name: str | None = Field(default=None, max_length=120)
    given_name_local: str | None = Field(default=None, max_length=120)
    family_name_local: str | None = Field(default=None, max_length=120)
    father_name_local: str | None = Field(default=None, max_length=120)
    sex: str | None = Field(default=None, max_length=16)
    date_of_birth: dt.date | None = Field(default=None, sa_column=Column(Date))
    birth_year: int | None = None
    dob_estimated: bool | None = None
    document_type: str | None = Field(default=None, max_length=16)
    document_number: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=24)
    status: str = Field(default="active", max_length=16)
    vulnerabilities: list[str] = _json(list)
    name_keys: list[str] = _json(list)
    """Transliteration-tolerant keys of every name (campsync_sync.names), for search."""
    clocks: dict[str, str] = _json()
    set_clocks: dict[str, Any] = _json()
    deleted_hlc: str | None = _hlc()
    restored_hlc: str | None = _hlc()
    is_deleted: bool = False
    erased_at: dt.datetime | None = _when()
    created_by_device: uuid.UUID | None = None
    created_at: dt.datetime = _created()
    updated_at: dt.datetime = _created()


class ServiceDelivery(SQLModel, table=True):
    __tablename__ = "service_delivery"
    __table_args__ = (
        Index(
            "ix_service_delivery_household_id_service", "household_id", "service", "delivered_at"
        ),
        Index("ix_service_delivery_camp_id_delivered_at", "camp_id", "delivered_at"),
    )

    id: uuid.UUID = Field(primary_key=True)
    camp_id: str = Field(foreign_key="camp.id", max_length=40)
    household_id: uuid.UUID
    person_id: uuid.UUID | None = None
    service: str = Field(max_length=32)
    quantity: float = 1
    unit: str | None = Field(default=None, max_length=24)
    delivered_at: dt.datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    hlc: str = Field(sa_column=Column(String(32), nullable=False))
    device_id: uuid.UUID | None = None
    operator: str | None = Field(default=None, max_length=64)
    batch_id: uuid.UUID | None = None
    voided_hlc: str | None = _hlc()
    void_reason: str | None = Field(default=None, max_length=32)
    created_at: dt.datetime = _created()


class Referral(SQLModel, table=True):
    __table_args__ = (
        Index("ix_referral_household_id", "household_id"),
        Index("ix_referral_camp_id_created_at", "camp_id", "created_at"),
    )

    id: uuid.UUID = Field(primary_key=True)
    camp_id: str = Field(foreign_key="camp.id", max_length=40)
    household_id: uuid.UUID
    person_id: uuid.UUID | None = None
    category: str = Field(max_length=16)
    urgency: str = Field(max_length=16)
    status: str = Field(default="open", max_length=16)
    hlc: str = Field(sa_column=Column(String(32), nullable=False))
    device_id: uuid.UUID | None = None
    operator: str | None = Field(default=None, max_length=64)
    batch_id: uuid.UUID | None = None
    voided_hlc: str | None = _hlc()
    void_reason: str | None = Field(default=None, max_length=32)
    created_at: dt.datetime = _created()


class ChangeLog(SQLModel, table=True):
    """One row per change of one record: the pull feed and the record's history.

    ``seq`` is allocated from the ``sync_counter`` row as the last step of the writing
    transaction, so it increases in commit order and a cursor over it never skips a row that
    commits late (DESIGN.md section 5). All rows of one transaction share one ``seq``.
    """

    __tablename__ = "change_log"
    __table_args__ = (
        Index("ix_change_log_camp_id_seq", "camp_id", "seq"),
        Index("ix_change_log_entity_id_id", "entity_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigIntPK, primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    camp_id: str = Field(max_length=40)
    entity: str = Field(max_length=24)
    entity_id: uuid.UUID
    kind: str = Field(max_length=16)
    op_id: uuid.UUID | None = None
    batch_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None
    actor: str | None = Field(default=None, max_length=64)
    """Who made the change: the tablet operator, or ``user:<id>`` for a coordinator."""
    hlc: str | None = _hlc()
    changes: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONDoc))
    at: dt.datetime = _created()


class Conflict(SQLModel, table=True):
    """A clash kept for review: both values, their clocks, who wrote them."""

    __table_args__ = (
        # Review queues list a camp's open conflicts oldest first.
        Index("ix_conflict_camp_id_status_created_at", "camp_id", "status", "created_at"),
        Index("ix_conflict_entity_id", "entity_id"),
    )

    id: uuid.UUID = Field(primary_key=True)
    camp_id: str = Field(foreign_key="camp.id", max_length=40)
    kind: str = Field(max_length=24)
    entity: str = Field(max_length=24)
    entity_id: uuid.UUID
    field: str | None = Field(default=None, max_length=64)
    fields: list[str] = _json(list)
    current_value: Any = Field(default=None, sa_column=Column(JSONDoc))
    current_hlc: str | None = _hlc()
    current_device_id: uuid.UUID | None = None
    incoming_value: Any = Field(default=None, sa_column=Column(JSONDoc))
    incoming_hlc: str | None = _hlc()
    incoming_device_id: uuid.UUID | None = None
    incoming_operator: str | None = Field(default=None, max_length=64)
    op_id: uuid.UUID | None = None
    batch_id: uuid.UUID | None = None
    winner: str = Field(max_length=16)
    status: str = Field(default="open", max_length=16)
    created_at: dt.datetime = _created()
    resolved_at: dt.datetime | None = _when()
    resolved_by: uuid.UUID | None = None
    resolution: Any = Field(default=None, sa_column=Column(JSONDoc))


class Flag(SQLModel, table=True):
    """A data-quality flag: possible double distribution, clamped clock..."""

    __table_args__ = (
        Index("ix_flag_camp_id_status_created_at", "camp_id", "status", "created_at"),
        Index("ix_flag_entity_id", "entity_id"),
        Index("ix_flag_household_id", "household_id"),
    )

    id: uuid.UUID = Field(primary_key=True)
    camp_id: str = Field(foreign_key="camp.id", max_length=40)
    kind: str = Field(max_length=32)
    entity: str = Field(max_length=24)
    entity_id: uuid.UUID
    household_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None
    batch_id: uuid.UUID | None = None
    details: dict[str, Any] = _json()
    status: str = Field(default="open", max_length=16)
    created_at: dt.datetime = _created()
    resolved_at: dt.datetime | None = _when()
    resolved_by: uuid.UUID | None = None
    resolution: str | None = Field(default=None, max_length=32)
