"""What the tablet hands back: records, sync reports and edit outcomes.

Records are frozen snapshots of the tablet's current view (the server's state joined with
edits not yet confirmed). Their ``repr`` leaves personal fields out, so that logging a record
by accident leaks no name, date of birth, document number or phone.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "EditOutcome",
    "Household",
    "Person",
    "Referral",
    "ServiceDelivery",
    "SyncProgress",
    "SyncReport",
    "TabletStatus",
]


@dataclass(frozen=True, slots=True)
class Person:
    """A registered person (see DESIGN.md section 3 for the fields).

    ``pending`` is true while the tablet holds edits of this person that the server has not
    yet confirmed.
    """

    id: uuid.UUID
    household_id: uuid.UUID | None = None
    relationship_to_head: str | None = None
    given_name: str | None = field(default=None, repr=False)
    family_name: str | None = field(default=None, repr=False)
    father_name: str | None = field(default=None, repr=False)
    given_name_local: str | None = field(default=None, repr=False)
    family_name_local: str | None = field(default=None, repr=False)
    father_name_local: str | None = field(default=None, repr=False)
    sex: str | None = None
    date_of_birth: dt.date | None = field(default=None, repr=False)
    birth_year: int | None = field(default=None, repr=False)
    dob_estimated: bool | None = None
    document_type: str | None = None
    document_number: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    status: str = "active"
    vulnerabilities: frozenset[str] = frozenset()
    deleted: bool = False
    pending: bool = False

    @property
    def name(self) -> str:
        """Given and family name, as one string (empty when neither is known)."""
        return " ".join(p for p in (self.given_name, self.family_name) if p)


@dataclass(frozen=True, slots=True)
class Household:
    """A registered household with its members.

    ``members`` are the live persons whose ``household_id`` is this household, head first.
    """

    id: uuid.UUID
    head_person_id: uuid.UUID | None = None
    arrival_date: dt.date | None = None
    arrival_type: str | None = None
    crossing_point: str | None = None
    origin_country: str | None = None
    origin_location: str | None = field(default=None, repr=False)
    destination_province: str | None = None
    destination_district: str | None = None
    shelter_status: str | None = None
    shelter_location: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    status: str = "active"
    needs: frozenset[str] = frozenset()
    vulnerabilities: frozenset[str] = frozenset()
    members: tuple[Person, ...] = ()
    deleted: bool = False
    pending: bool = False

    @property
    def head(self) -> Person | None:
        """The head of household, when registered on this tablet's view."""
        return next((p for p in self.members if p.id == self.head_person_id), None)


@dataclass(frozen=True, slots=True)
class ServiceDelivery:
    """A service delivered to a household (insert-only; a mistake is voided, not edited)."""

    id: uuid.UUID
    household_id: uuid.UUID
    service: str
    quantity: float
    delivered_at: dt.datetime
    unit: str | None = None
    person_id: uuid.UUID | None = None
    voided: bool = False
    void_reason: str | None = None
    pending: bool = False


@dataclass(frozen=True, slots=True)
class Referral:
    """A referral of a household or one of its members (no free text: it would leak)."""

    id: uuid.UUID
    household_id: uuid.UUID
    category: str
    urgency: str
    status: str = "open"
    person_id: uuid.UUID | None = None
    voided: bool = False
    void_reason: str | None = None
    pending: bool = False


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """Where a sync is: ``done`` of ``total`` operations pushed, or rows pulled so far."""

    phase: Literal["push", "pull"]
    done: int
    total: int | None = None


@dataclass(slots=True)
class SyncReport:
    """What one :meth:`Tablet.sync` did.

    Attributes:
        pushed: operations the server acknowledged during this sync.
        pulled: record states pulled from the server.
        applied: acknowledged operations that were applied or merged.
        conflicts: acknowledged operations that opened a conflict for coordinator review.
        flagged: acknowledged operations accepted and flagged (e.g. a double distribution).
        rejected: acknowledged operations the server refused (see :meth:`Tablet.conflicts`).
        batches: batches acknowledged.
        wiped: the server revoked this tablet and it wiped its keys and data.
    """

    pushed: int = 0
    pulled: int = 0
    applied: int = 0
    conflicts: int = 0
    flagged: int = 0
    rejected: int = 0
    batches: int = 0
    wiped: bool = False


@dataclass(frozen=True, slots=True)
class EditOutcome:
    """What the server did with one of this tablet's operations, from its receipt.

    ``outcome`` is ``applied``, ``merged``, ``conflict``, ``flagged`` or ``rejected``;
    ``reason`` and ``detail`` say why an operation was rejected (a rule or a field name,
    never a value).
    """

    op_id: uuid.UUID
    batch_id: uuid.UUID
    operation: str
    entity: str
    record_id: uuid.UUID
    outcome: str
    reason: str | None
    detail: str | None
    conflicts: int
    flags: int
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class TabletStatus:
    """The tablet's identity and sync position, all free of personal data."""

    device_id: uuid.UUID
    camp_id: str
    server_url: str
    pending: int
    sealed_batches: int
    last_sync_at: dt.datetime | None
    cursor: int
    open_issues: int
