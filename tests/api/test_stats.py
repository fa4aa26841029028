"""Camp statistics: every figure aggregated by the database, tombstones excluded."""

from __future__ import annotations

import datetime as dt

from campsync_sync import Entity
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.households.ages import age_band
from tests.factories import bearer, make_camp, make_user
from tests.registry_factories import (
    Tablet,
    delete,
    make_conflict,
    make_device,
    make_household,
    make_person,
    make_service,
)


def test_stats_count_people_needs_services_reviews_and_devices(
    client: TestClient, db: Engine
) -> None:
    camp, other = make_camp(db), make_camp(db)
    today = dt.datetime.now(dt.UTC).date()
    first = make_household(db, camp, needs=["food", "shelter"], vulnerabilities=["disability"])
    second = make_household(db, camp, needs=["food"])
    make_household(db, camp, needs=["food"], status="departed")
    deleted = make_household(db, camp, needs=["food", "health"])
    delete(db, camp, Entity.HOUSEHOLD, deleted, Tablet(), seen=True)
    make_household(db, other, needs=["food"])
    make_person(db, camp, first, sex="female", date_of_birth="1990-05-01")
    make_person(
        db, camp, first, sex="male", birth_year=today.year - 2, vulnerabilities=["disability"]
    )
    make_person(db, camp, second, sex="female", birth_year=today.year - 70)
    make_person(db, camp, second, sex="male", status="deceased")
    gone = make_person(db, camp, second, sex="male", birth_year=2000)
    delete(db, camp, Entity.PERSON, gone, Tablet(), seen=True)
    make_person(db, camp, second, given_name="Unknownsex", sex=None)
    make_conflict(db, camp, second)  # one more person: female, no birth date
    morning = dt.datetime.combine(today, dt.time(8), tzinfo=dt.UTC)
    make_service(db, camp, first, delivered_at=morning - dt.timedelta(days=3), quantity=2)
    make_service(db, camp, first, service="tent", delivered_at=morning)
    make_service(db, camp, second, delivered_at=morning)
    make_service(db, camp, second, delivered_at=morning - dt.timedelta(days=40))
    tablet = make_device(db, camp, name="tab-a")
    make_device(db, other)
    token = make_user(db, "coordinator", [camp])

    response = client.get(f"/v1/camps/{camp}/stats", headers=bearer(token))
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["camp"] == camp
    assert stats["households"] == 2
    assert stats["people"] == 5
    by = stats["people_by_sex_age"]
    assert by["female"]["18-59"] == 1
    assert by["male"]["0-4"] == 1
    assert by["female"]["60+"] == 1
    assert by["unknown"]["unknown"] == 1
    assert by["female"]["unknown"] == 1  # the conflict's person: no birth date
    assert sum(n for bands in by.values() for n in bands.values()) == 5
    assert stats["needs"]["food"] == 2
    assert stats["needs"]["shelter"] == 1
    assert stats["needs"]["health"] == 0
    assert stats["vulnerabilities"]["disability"] == 1
    assert stats["person_vulnerabilities"]["disability"] == 1
    days = {d["date"]: d for d in stats["services_per_day"]}
    assert set(days) == {str(today - dt.timedelta(days=3)), str(today)}
    assert days[str(today)]["deliveries"] == 2
    assert days[str(today)]["by_service"] == {"food_ration": 1, "tent": 1}
    assert days[str(today - dt.timedelta(days=3))]["quantity"] == 2
    assert stats["open_conflicts"] == 1
    assert stats["open_flags"] == 0
    assert [d["id"] for d in stats["devices"]] == [str(tablet.device_id)]
    older = client.get(
        f"/v1/camps/{camp}/stats",
        params={
            "services_from": str(today - dt.timedelta(days=60)),
            "services_to": str(today - dt.timedelta(days=30)),
        },
        headers=bearer(token),
    ).json()
    assert [d["date"] for d in older["services_per_day"]] == [str(today - dt.timedelta(days=40))]


def test_stats_of_another_camp_are_404(client: TestClient, db: Engine) -> None:
    camp, other = make_camp(db), make_camp(db)
    token = make_user(db, "integrator", [camp])
    assert client.get(f"/v1/camps/{other}/stats", headers=bearer(token)).status_code == 404
    assert client.get("/v1/camps/nowhere/stats", headers=bearer(token)).status_code == 404


def test_age_bands_match_birthdays_exactly() -> None:
    today = dt.date(2026, 3, 1)
    assert age_band(dt.date(2021, 3, 2), None, today) == "0-4"
    assert age_band(dt.date(2021, 3, 1), None, today) == "5-11"
    assert age_band(dt.date(2008, 3, 1), None, today) == "18-59"
    assert age_band(dt.date(1966, 3, 2), None, today) == "18-59"
    assert age_band(dt.date(1966, 3, 1), None, today) == "60+"
    assert age_band(None, 2022, today) == "0-4"
    assert age_band(None, 2021, today) == "5-11"
    assert age_band(None, None, today) == "unknown"
    leap = dt.date(2028, 2, 29)
    assert age_band(dt.date(2023, 2, 28), None, leap) == "5-11"
    assert age_band(dt.date(2023, 3, 1), None, leap) == "0-4"
