"""Service deliveries and referrals: insert-only events, listed newest first.

Events carry ids, services and quantities but no personal data, so reading them is not audited.
Lists are keyset-paginated on ``(time, id)`` descending over the ``(camp_id, time)`` indexes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Table, and_, select
from sqlmodel import Session

from api.camps.scope import camps_to_read, in_camps
from api.events.schemas import ReferralFilters, ReferralPublic, ServiceFilters, ServicePublic
from api.pagination import Page, after_time_and_id, page_of
from api.principal import Principal
from api.registry.models import Referral, ServiceDelivery
from api.schemas import clamp_datetime

SERVICE: Final[Table] = ServiceDelivery.__table__  # type: ignore[attr-defined]
REFERRAL: Final[Table] = Referral.__table__  # type: ignore[attr-defined]
RECENT: Final = 50

_SERVICE_COLUMNS: Final = tuple(
    SERVICE.c[n]
    for n in (
        "id",
        "camp_id",
        "household_id",
        "person_id",
        "service",
        "quantity",
        "unit",
        "delivered_at",
        "device_id",
        "voided_hlc",
        "void_reason",
    )
)
_REFERRAL_COLUMNS: Final = tuple(
    REFERRAL.c[n]
    for n in (
        "id",
        "camp_id",
        "household_id",
        "person_id",
        "category",
        "urgency",
        "status",
        "created_at",
        "device_id",
        "voided_hlc",
        "void_reason",
    )
)


def service_view(row: Mapping[Any, Any]) -> ServicePublic:
    values = {k: v for k, v in row.items() if k != "voided_hlc"}
    return ServicePublic(**values, voided=row["voided_hlc"] is not None)


def referral_view(row: Mapping[Any, Any]) -> ReferralPublic:
    values = {k: v for k, v in row.items() if k != "voided_hlc"}
    return ReferralPublic(**values, voided=row["voided_hlc"] is not None)


def list_services(
    *, session: Session, principal: Principal, filters: ServiceFilters
) -> Page[ServicePublic]:
    """Deliveries matching the filters, newest first."""
    camps = camps_to_read(session, principal, filters.camp)
    conditions = [in_camps(SERVICE.c.camp_id, camps)]
    if filters.household_id is not None:
        conditions.append(SERVICE.c.household_id == filters.household_id)
    if filters.service:
        conditions.append(SERVICE.c.service.in_(sorted(set(filters.service))))
    if filters.delivered_from is not None:
        conditions.append(SERVICE.c.delivered_at >= clamp_datetime(filters.delivered_from))
    if filters.delivered_to is not None:
        conditions.append(SERVICE.c.delivered_at < clamp_datetime(filters.delivered_to))
    if not filters.include_voided:
        conditions.append(SERVICE.c.voided_hlc.is_(None))
    if filters.cursor is not None:
        conditions.append(
            after_time_and_id(
                "services", filters.cursor, SERVICE.c.delivered_at, SERVICE.c.id, newest_first=True
            )
        )
    rows = session.execute(
        select(*_SERVICE_COLUMNS)
        .where(*conditions)
        .order_by(SERVICE.c.delivered_at.desc(), SERVICE.c.id.desc())
        .limit(filters.limit + 1)
    ).mappings()
    return page_of(
        [service_view(r) for r in rows],
        filters.limit,
        "services",
        lambda s: (s.delivered_at, s.id),
    )


def list_referrals(
    *, session: Session, principal: Principal, filters: ReferralFilters
) -> Page[ReferralPublic]:
    """Referrals matching the filters, newest first."""
    camps = camps_to_read(session, principal, filters.camp)
    conditions = [in_camps(REFERRAL.c.camp_id, camps)]
    if filters.household_id is not None:
        conditions.append(REFERRAL.c.household_id == filters.household_id)
    for column, wanted in (
        (REFERRAL.c.category, filters.category),
        (REFERRAL.c.urgency, filters.urgency),
        (REFERRAL.c.status, filters.status),
    ):
        if wanted:
            conditions.append(column.in_(sorted(set(wanted))))
    if filters.created_from is not None:
        conditions.append(REFERRAL.c.created_at >= clamp_datetime(filters.created_from))
    if filters.created_to is not None:
        conditions.append(REFERRAL.c.created_at < clamp_datetime(filters.created_to))
    if not filters.include_voided:
        conditions.append(REFERRAL.c.voided_hlc.is_(None))
    if filters.cursor is not None:
        conditions.append(
            after_time_and_id(
                "referrals", filters.cursor, REFERRAL.c.created_at, REFERRAL.c.id, newest_first=True
            )
        )
    rows = session.execute(
        select(*_REFERRAL_COLUMNS)
        .where(*conditions)
        .order_by(REFERRAL.c.created_at.desc(), REFERRAL.c.id.desc())
        .limit(filters.limit + 1)
    ).mappings()
    return page_of(
        [referral_view(r) for r in rows],
        filters.limit,
        "referrals",
        lambda r: (r.created_at, r.id),
    )


def recent_services(
    session: Session,
    camps: frozenset[str] | None,
    *,
    household_id: uuid.UUID | None,
    person_id: uuid.UUID | None = None,
) -> list[ServicePublic]:
    """The latest deliveries to a household (or one of its members), for a detail view.

    A person's deliveries are looked up through their household, which is indexed.
    """
    target = SERVICE.c.household_id == household_id
    if person_id is not None:
        target = and_(target, SERVICE.c.person_id == person_id)
    rows = session.execute(
        select(*_SERVICE_COLUMNS)
        .where(target, in_camps(SERVICE.c.camp_id, camps))
        .order_by(SERVICE.c.delivered_at.desc(), SERVICE.c.id.desc())
        .limit(RECENT)
    ).mappings()
    return [service_view(r) for r in rows]


def recent_referrals(
    session: Session,
    camps: frozenset[str] | None,
    *,
    household_id: uuid.UUID | None,
    person_id: uuid.UUID | None = None,
) -> list[ReferralPublic]:
    target = REFERRAL.c.household_id == household_id
    if person_id is not None:
        target = and_(target, REFERRAL.c.person_id == person_id)
    rows = session.execute(
        select(*_REFERRAL_COLUMNS)
        .where(target, in_camps(REFERRAL.c.camp_id, camps))
        .order_by(REFERRAL.c.created_at.desc(), REFERRAL.c.id.desc())
        .limit(RECENT)
    ).mappings()
    return [referral_view(r) for r in rows]
