"""Per-camp statistics, aggregated by the database.

Every figure is one ``GROUP BY`` (or ``count``) over indexed camp rows; Python only reshapes
the few aggregate rows into the response. Set fields are unnested in SQL (``json_each`` on
SQLite, ``jsonb_array_elements_text`` on PostgreSQL). Tombstones are excluded everywhere and
population figures count active records only: departed, merged or deceased people are not in
the camp any more.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from campsync_sync.fields import NEEDS, SEXES, VULNERABILITIES
from sqlalchemy import ColumnElement, Table, false, func, select, true
from sqlmodel import Session

from api.camps.scope import camps_to_read
from api.devices.models import Device
from api.households.ages import BANDS, UNKNOWN, age_band_sql
from api.principal import Principal
from api.registry.models import Conflict, Flag, Household, Person, ServiceDelivery
from api.schemas import clamp_date
from api.sql import array_elements, array_not_empty, utc_day, utc_midnight
from api.stats.schemas import CampStats, DayOfServices, DeviceSummary, StatsFilters

HOUSEHOLD: Final[Table] = Household.__table__  # type: ignore[attr-defined]
PERSON: Final[Table] = Person.__table__  # type: ignore[attr-defined]
SERVICE: Final[Table] = ServiceDelivery.__table__  # type: ignore[attr-defined]
CONFLICT: Final[Table] = Conflict.__table__  # type: ignore[attr-defined]
FLAG: Final[Table] = Flag.__table__  # type: ignore[attr-defined]
DEVICE: Final[Table] = Device.__table__  # type: ignore[attr-defined]
DEFAULT_DAYS: Final = 30


def _live(table: Table, camp: str) -> list[ColumnElement[bool]]:
    return [table.c.camp_id == camp, table.c.is_deleted == false(), table.c.status == "active"]


def _count(session: Session, table: Table, *conditions: ColumnElement[bool]) -> int:
    return int(
        session.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one()
    )


def _element_counts(
    session: Session, table: Table, column: str, camp: str, catalogue: tuple[str, ...]
) -> dict[str, int]:
    dialect = session.get_bind().dialect.name
    elements = array_elements(dialect, table.c[column])
    rows = session.execute(
        select(elements.c.value, func.count())
        .select_from(table.join(elements, true()))
        .where(*_live(table, camp), array_not_empty(dialect, table.c[column]))
        .group_by(elements.c.value)
    ).all()
    counts = dict.fromkeys(catalogue, 0)
    counts.update({str(value): int(n) for value, n in rows})
    return counts


def _people_by_sex_age(session: Session, camp: str, today: dt.date) -> dict[str, dict[str, int]]:
    sex = func.coalesce(PERSON.c.sex, UNKNOWN)
    band = age_band_sql(PERSON.c.date_of_birth, PERSON.c.birth_year, today)
    rows = session.execute(
        select(sex, band, func.count()).where(*_live(PERSON, camp)).group_by(sex, band)
    ).all()
    table = {s: dict.fromkeys((*BANDS, UNKNOWN), 0) for s in (*SEXES, UNKNOWN)}
    for s, b, n in rows:
        table.setdefault(str(s), dict.fromkeys((*BANDS, UNKNOWN), 0))[str(b)] = int(n)
    return table


def _services_per_day(
    session: Session, camp: str, first: dt.date, last: dt.date
) -> list[DayOfServices]:
    day = utc_day(session.get_bind().dialect.name, SERVICE.c.delivered_at)
    rows = session.execute(
        select(day, SERVICE.c.service, func.count(), func.sum(SERVICE.c.quantity))
        .where(
            SERVICE.c.camp_id == camp,
            SERVICE.c.voided_hlc.is_(None),
            SERVICE.c.delivered_at >= utc_midnight(first),
            SERVICE.c.delivered_at < utc_midnight(last + dt.timedelta(days=1)),
        )
        .group_by(day, SERVICE.c.service)
        .order_by(day, SERVICE.c.service)
    ).all()
    days: dict[str, dict[str, Any]] = {}
    for date, service, count, quantity in rows:
        entry = days.setdefault(str(date), {"deliveries": 0, "quantity": 0.0, "by_service": {}})
        entry["deliveries"] += int(count)
        entry["quantity"] += float(quantity or 0)
        entry["by_service"][service] = int(count)
    return [DayOfServices(date=dt.date.fromisoformat(d), **v) for d, v in days.items()]


def _devices(session: Session, camp: str) -> list[DeviceSummary]:
    rows = session.execute(
        select(
            DEVICE.c.id,
            DEVICE.c.name,
            DEVICE.c.status,
            DEVICE.c.last_seq,
            DEVICE.c.last_sync_at,
            DEVICE.c.last_pull_at,
            DEVICE.c.revoked_at,
        )
        .where(DEVICE.c.camp_id == camp)
        .order_by(DEVICE.c.name, DEVICE.c.id)
    ).mappings()
    return [DeviceSummary(**row) for row in rows]


def camp_stats(
    *,
    session: Session,
    principal: Principal,
    camp_id: str,
    filters: StatsFilters,
    today: dt.date,
) -> CampStats:
    """The camp's population, needs, deliveries per day, open reviews and devices."""
    camps_to_read(session, principal, camp_id)
    last = clamp_date(filters.services_to) or today
    first = clamp_date(filters.services_from) or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    people = _people_by_sex_age(session, camp_id, today)
    return CampStats(
        camp=camp_id,
        as_of=today,
        households=_count(session, HOUSEHOLD, *_live(HOUSEHOLD, camp_id)),
        people=sum(n for bands in people.values() for n in bands.values()),
        people_by_sex_age=people,
        needs=_element_counts(session, HOUSEHOLD, "needs", camp_id, NEEDS),
        vulnerabilities=_element_counts(
            session, HOUSEHOLD, "vulnerabilities", camp_id, VULNERABILITIES
        ),
        person_vulnerabilities=_element_counts(
            session, PERSON, "vulnerabilities", camp_id, VULNERABILITIES
        ),
        services_per_day=_services_per_day(session, camp_id, first, last),
        open_conflicts=_count(
            session, CONFLICT, CONFLICT.c.camp_id == camp_id, CONFLICT.c.status == "open"
        ),
        open_flags=_count(session, FLAG, FLAG.c.camp_id == camp_id, FLAG.c.status == "open"),
        devices=_devices(session, camp_id),
    )
