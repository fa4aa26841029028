"""Service deliveries, referrals and data-quality flags."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlmodel import Session

from api.audit.models import AuditLog
from api.registry.models import ServiceDelivery
from tests.factories import bearer, make_camp, make_user
from tests.registry_factories import flags_of, make_household, make_referral, make_service

DAY = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def test_services_list_newest_first_with_filters_and_pages(client: TestClient, db: Engine) -> None:
    camp, other = make_camp(db), make_camp(db)
    first, second = make_household(db, camp), make_household(db, camp)
    older = make_service(db, camp, first, delivered_at=DAY, service="tent", quantity=2)
    newer = make_service(db, camp, second, delivered_at=DAY + dt.timedelta(days=2))
    same_time = make_service(db, camp, first, delivered_at=DAY + dt.timedelta(days=2))
    make_service(db, other, make_household(db, other), delivered_at=DAY)
    token = make_user(db, "coordinator", [camp])

    def ids(**params: object) -> list[str]:
        response = client.get("/v1/services", params=params, headers=bearer(token))
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    tied = sorted([str(newer), str(same_time)], reverse=True)
    assert ids() == [*tied, str(older)]
    assert ids(household_id=str(first)) == [str(same_time), str(older)]
    assert ids(service="tent") == [str(older)]
    assert ids(delivered_from=(DAY + dt.timedelta(days=1)).isoformat()) == tied
    assert ids(delivered_to=(DAY + dt.timedelta(days=1)).isoformat()) == [str(older)]
    paged, cursor = [], None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/services", params=params, headers=bearer(token)).json()
        paged += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert paged == [*tied, str(older)]
    item = client.get("/v1/services", params={"service": "tent"}, headers=bearer(token)).json()
    [tent] = item["items"]
    assert (tent["service"], tent["quantity"], tent["household_id"]) == ("tent", 2.0, str(first))
    assert tent["delivered_at"].startswith("2026-11-20T09:00:00")


def test_voided_services_are_hidden_unless_asked_for(client: TestClient, db: Engine) -> None:
    camp = make_camp(db)
    delivery = make_service(db, camp, make_household(db, camp))
    with Session(db) as session:
        session.execute(
            update(ServiceDelivery)
            .where(ServiceDelivery.id == delivery)
            .values(voided_hlc="0" * 32, void_reason="recorded_in_error")
        )
        session.commit()
    token = make_user(db, "coordinator", [camp])
    assert client.get("/v1/services", headers=bearer(token)).json()["items"] == []
    [voided] = client.get(
        "/v1/services", params={"include_voided": True}, headers=bearer(token)
    ).json()["items"]
    assert voided["voided"] is True
    assert voided["void_reason"] == "recorded_in_error"


def test_referrals_filter_by_category_and_household(client: TestClient, db: Engine) -> None:
    camp = make_camp(db)
    household = make_household(db, camp)
    health = make_referral(db, camp, household, category="health", created_at=DAY)
    protection = make_referral(
        db,
        camp,
        make_household(db, camp),
        category="protection",
        urgency="emergency",
        created_at=DAY + dt.timedelta(hours=1),
    )
    token = make_user(db, "integrator", [camp])

    def ids(**params: object) -> list[str]:
        response = client.get("/v1/referrals", params=params, headers=bearer(token))
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    assert ids() == [str(protection), str(health)]
    assert ids(category="health") == [str(health)]
    assert ids(urgency="emergency") == [str(protection)]
    assert ids(household_id=str(household)) == [str(health)]
    assert ids(created_from=(DAY + dt.timedelta(minutes=30)).isoformat()) == [str(protection)]


def test_a_second_ration_inside_the_window_is_flagged_and_resolved_once(
    client: TestClient, db: Engine
) -> None:
    camp = make_camp(db)
    household = make_household(db, camp)
    make_service(db, camp, household, delivered_at=DAY)
    make_service(db, camp, household, delivered_at=DAY + dt.timedelta(days=30))
    assert flags_of(db, household) == []
    again = make_service(db, camp, household, delivered_at=DAY + dt.timedelta(days=31))
    [flag] = flags_of(db, household)
    token = make_user(db, "coordinator", [camp])
    [listed] = client.get("/v1/flags", params={"camp": camp}, headers=bearer(token)).json()["items"]
    assert listed["kind"] == "double_distribution"
    assert listed["entity_id"] == str(again)
    assert len(listed["details"]["related_ids"]) == 1
    resolved = client.post(
        f"/v1/flags/{flag}/resolve", json={"resolution": "dismissed"}, headers=bearer(token)
    )
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolution"]) == ("resolved", "dismissed")
    again_response = client.post(
        f"/v1/flags/{flag}/resolve", json={"resolution": "confirmed"}, headers=bearer(token)
    )
    assert again_response.status_code == 409
    assert again_response.json()["error"]["code"] == "already_resolved"
    assert client.get("/v1/flags", headers=bearer(token)).json()["items"] == []
    done = client.get("/v1/flags", params={"status": "resolved"}, headers=bearer(token)).json()
    assert [f["id"] for f in done["items"]] == [str(flag)]
    with Session(db) as session:
        [entry] = session.execute(
            select(AuditLog).where(AuditLog.action == "flag.resolve")
        ).scalars()
    assert entry.entity_id == str(flag)
    assert entry.details == {"kind": "double_distribution", "resolution": "dismissed"}


def test_flags_page_oldest_first(client: TestClient, db: Engine) -> None:
    camp = make_camp(db)
    household = make_household(db, camp)
    for day in (0, 1, 2):
        make_service(db, camp, household, delivered_at=DAY + dt.timedelta(days=day))
    token = make_user(db, "coordinator", [camp])
    every = client.get("/v1/flags", headers=bearer(token)).json()["items"]
    assert len(every) == 2
    paged, cursor = [], None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/flags", params=params, headers=bearer(token)).json()
        paged += [f["id"] for f in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert paged == [f["id"] for f in every]
    assert [f["created_at"] for f in every] == sorted(f["created_at"] for f in every)


def test_flags_of_another_camp_are_invisible(client: TestClient, db: Engine) -> None:
    camp, other = make_camp(db), make_camp(db)
    household = make_household(db, other)
    make_service(db, other, household)
    make_service(db, other, household)
    [flag] = flags_of(db, household)
    token = make_user(db, "coordinator", [camp])
    assert client.get("/v1/flags", headers=bearer(token)).json()["items"] == []
    response = client.post(
        f"/v1/flags/{flag}/resolve", json={"resolution": "dismissed"}, headers=bearer(token)
    )
    assert response.status_code == 404
    integrator = make_user(db, "integrator", [other])
    forbidden = client.post(
        f"/v1/flags/{flag}/resolve", json={"resolution": "dismissed"}, headers=bearer(integrator)
    )
    assert forbidden.status_code == 403
