"""The reference client against a real uvicorn server on loopback (SQLite or PostgreSQL)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from campsync_client import _crypto
from sqlalchemy import Engine

from tests.e2e.clientkit import CHEAP_KDF, Admin, conflicts, server_state, tablet_state
from tests.server import LiveServer


@pytest.fixture
def live(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LiveServer, Admin]]:
    monkeypatch.setattr(_crypto, "DEFAULT_KDF", CHEAP_KDF)
    server = LiveServer(db.url.render_as_string(hide_password=False), tmp_path / "server-data")
    (tmp_path / "server-data").mkdir()
    server.start()
    admin = Admin(server.url, db)
    try:
        yield server, admin
    finally:
        admin.close()
        server.stop()


def test_three_tablets_edit_offline_and_converge(
    live: tuple[LiveServer, Admin], db: Engine, tmp_path: Path
) -> None:
    _, admin = live
    camp = admin.camp()
    tablets = [admin.tablet(camp, tmp_path / f"t{i}.db") for i in range(3)]
    a, b, c = tablets
    shared = a.register_household(
        {"given_name": "Mohammad", "family_name": "Karimi", "sex": "male", "birth_year": 1985},
        [{"given_name": "Fatima", "family_name": "Karimi", "sex": "female"}],
        needs={"food"}, arrival_type="deported",
    )  # fmt: skip
    a.sync()
    b.sync()
    c.sync()
    head = shared.head_person_id
    # Offline, all three edit the same household; two clash on an identity field.
    a.update_person(head, family_name="Kareemi")
    a.add_needs(shared.id, "health")
    b.update_person(head, family_name="Karimy")
    b.add_needs(shared.id, "wash")
    b.update_household(shared.id, shelter_status="tent_assigned")
    c.remove_needs(shared.id, "food")
    c.register_household({"given_name": "Gul", "family_name": "Ahmadi"}, needs={"shelter"})
    for order in itertools.islice(itertools.permutations(tablets), 3):
        for tablet in order:
            tablet.sync()
    for tablet in tablets:
        tablet.sync()
    expected = server_state(db, camp)
    assert len(expected) == 5
    for tablet in tablets:
        assert tablet_state(tablet) == expected
    assert a.household(shared.id).needs == {"health", "wash"}
    clashes = [x for x in conflicts(db, camp) if x.kind == "field"]
    assert len(clashes) == 1
    assert any(t.conflicts() for t in (a, b))
    # The coordinator sees it through the API and settles it; the decision reaches every tablet.
    listed = admin.http.get("/v1/conflicts", params={"camp": camp}).json()["items"]
    assert [(c["entity_id"], c["field"]) for c in listed] == [(str(head), "family_name")]
    settled = admin.http.post(
        f"/v1/conflicts/{listed[0]['id']}/resolve", json={"choice": "value", "value": "Karimi"}
    )
    assert settled.status_code == 200, settled.text
    for tablet in tablets:
        tablet.sync()
        assert tablet.person(head).family_name == "Karimi"
    assert tablet_state(a) == server_state(db, camp)


def test_the_same_service_from_two_tablets_is_kept_twice_and_flagged(
    live: tuple[LiveServer, Admin], db: Engine, tmp_path: Path
) -> None:
    _, admin = live
    camp = admin.camp()
    a, b = admin.tablet(camp, tmp_path / "a.db"), admin.tablet(camp, tmp_path / "b.db")
    household = a.register_household({"given_name": "Omar"})
    a.sync()
    b.sync()
    a.record_service(household.id, "food_ration", 25, "kg")
    b.record_service(household.id, "food_ration", 25, "kg")
    reports = [a.sync(), b.sync()]
    assert sum(r.flagged for r in reports) == 1
    a.sync()
    assert len(a.services(household.id)) == len(b.services(household.id)) == 2
    assert tablet_state(a) == tablet_state(b) == server_state(db, camp)


def test_revoked_tablet_is_told_to_wipe_and_nothing_is_merged(
    live: tuple[LiveServer, Admin], db: Engine, tmp_path: Path
) -> None:
    _, admin = live
    camp = admin.camp()
    tablet = admin.tablet(camp, tmp_path / "lost.db")
    tablet.register_household({"given_name": "Before"})
    tablet.sync()
    tablet.register_household({"given_name": "AfterTheft"})
    admin.revoke(tablet.device_id)
    report = tablet.sync()
    assert report.wiped
    assert not (tmp_path / "lost.db").exists()
    names = {v.get("given_name") for v in server_state(db, camp).values()}
    assert "Before" in names
    assert "AfterTheft" not in names
    idle = admin.tablet(camp, tmp_path / "idle.db")  # nothing to push: told at the token step
    idle.sync()
    admin.revoke(idle.device_id)
    assert idle.sync().wiped
    assert not (tmp_path / "idle.db").exists()


def test_fresh_tablet_provisions_5000_households(
    live: tuple[LiveServer, Admin], db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, admin = live
    camp = admin.camp()
    source = admin.tablet(camp, tmp_path / "source.db")
    started = time.perf_counter()
    for i in range(5000):
        source.register_household(
            {"given_name": f"Head{i}", "family_name": "Family", "birth_year": 1980 + i % 30},
            [{"given_name": f"Child{i}", "sex": "male", "birth_year": 2015}],
            needs={"food", "shelter"}, arrival_type="deported",
        )  # fmt: skip
    registered = time.perf_counter() - started
    started = time.perf_counter()
    source.sync()
    pushed = time.perf_counter() - started
    fresh = admin.tablet(camp, tmp_path / "fresh.db")
    started = time.perf_counter()
    report = fresh.sync()
    provisioned = time.perf_counter() - started
    assert report.pulled == 15000
    assert len(fresh.households()) == 5000
    with capsys.disabled():
        print(
            f"\n5,000 households (15,000 records): registered offline in {registered:.1f}s, "
            f"pushed in {pushed:.1f}s, provisioned on a fresh tablet in {provisioned:.1f}s"
        )
