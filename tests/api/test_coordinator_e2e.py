"""A coordinator's day on data pushed by real tablets through the sync API.

Two enrolled tablets register a family and then, both offline, spell the head's name their own
way; the second also hands out a food ration again inside its window. The coordinator finds the
family by a third spelling, resolves the name conflict and dismisses the flag, and both tablets
receive the decision on their next pull, after the cursor they already hold.
"""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.factories import bearer, make_camp, make_tablet, make_user


def test_search_resolve_and_pull_the_decision(client: TestClient, db: Engine) -> None:
    camp = make_camp(db, "torkham-1")
    first, second = make_tablet(client, db, camp), make_tablet(client, db, camp)
    second.operator = "worker-2"
    household = first.household(needs=["food", "shelter"], arrival_date="2026-11-20")
    head = first.person(
        household.id, given_name="Mohammad", family_name="Stanekzai", family_name_local="ستانکزی"
    )
    first.push([household, head])
    _, cursor_first, _ = first.pull_all()
    _, cursor_second, _ = second.pull_all()
    # Offline, each tablet corrects the name its own way, neither having seen the other.
    base = head.fields["given_name"].hlc
    first.push(
        [first.patch("person", head.id, {"given_name": "Muhammad"}, bases={"given_name": base})]
    )
    receipt = second.push(
        [second.patch("person", head.id, {"given_name": "Mohammed"}, bases={"given_name": base})]
    )
    assert receipt.results[0].outcome == "conflict"
    [conflict_id] = receipt.results[0].conflict_ids
    delivered = dt.datetime.now(dt.UTC)
    second.push([second.service(household.id, delivered_at=delivered - dt.timedelta(days=2))])
    flagged = second.push([second.service(household.id, delivered_at=delivered)])
    [flag_id] = flagged.results[0].flag_ids

    coordinator = make_user(db, "coordinator", [camp])
    found = client.get(
        "/v1/households", params={"q": "Muhamad Stanikzai"}, headers=bearer(coordinator)
    ).json()
    assert [h["id"] for h in found["items"]] == [str(household.id)]
    by_local_script = client.get(
        "/v1/persons", params={"q": "ستانکزی"}, headers=bearer(coordinator)
    ).json()
    assert [p["id"] for p in by_local_script["items"]] == [str(head.id)]
    detail = client.get(f"/v1/households/{household.id}", headers=bearer(coordinator)).json()
    assert [c["id"] for c in detail["conflicts"]] == [str(conflict_id)]
    assert [f["id"] for f in detail["flags"]] == [str(flag_id)]
    conflict = client.get(f"/v1/conflicts/{conflict_id}", headers=bearer(coordinator)).json()
    assert {conflict["current"]["value"], conflict["incoming"]["value"]} == {"Muhammad", "Mohammed"}
    assert conflict["incoming"]["device_id"] == str(second.device_id)
    assert conflict["incoming"]["operator"] == "worker-2"
    assert conflict["current"]["device_id"] == str(first.device_id)
    assert conflict["current"]["operator"] == "worker-1"

    resolved = client.post(
        f"/v1/conflicts/{conflict_id}/resolve",
        json={"choice": "value", "value": "Mohammad"},
        headers=bearer(coordinator),
    )
    assert resolved.status_code == 200, resolved.text
    seq = resolved.json()["resolution"]["commit_seq"]
    dismissed = client.post(
        f"/v1/flags/{flag_id}/resolve",
        json={"resolution": "dismissed"},
        headers=bearer(coordinator),
    )
    assert dismissed.status_code == 200

    for tablet, cursor in ((first, cursor_first), (second, cursor_second)):
        rows, next_cursor, _ = tablet.pull_all(cursor)
        assert next_cursor >= seq > cursor
        assert rows[head.id].values["given_name"] == "Mohammad"

    history = client.get(f"/v1/persons/{head.id}/history", headers=bearer(coordinator)).json()
    assert history["items"][-1]["kind"] == "resolve"
    assert history["items"][-1]["actor"].startswith("user:")
    stats = client.get(f"/v1/camps/{camp}/stats", headers=bearer(coordinator)).json()
    assert (stats["households"], stats["people"], stats["open_conflicts"]) == (1, 1, 0)
    assert {d["id"] for d in stats["devices"]} == {str(first.device_id), str(second.device_id)}
