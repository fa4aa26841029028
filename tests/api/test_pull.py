"""Pulling changes: scope, commit groups, tombstones, cursors, provisioning."""

from __future__ import annotations

from campsync_sync import HLC, DeleteOp, Entity, uuid7
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from api.registry.models import ChangeLog
from api.registry.writes import commit_server_edit
from tests.factories import make_camp, make_tablet


def test_a_page_holds_the_camp_s_current_rows_tombstones_and_events(client, db: Engine) -> None:
    camp, other = make_camp(db), make_camp(db)
    tablet, elsewhere = make_tablet(client, db, camp), make_tablet(client, db, other)
    hid, pid = uuid7(), uuid7()
    delivery = tablet.service(hid, "tent")
    tablet.push([tablet.household(hid, needs=["food"]), tablet.person(hid, pid), delivery])
    elsewhere.push([elsewhere.household()])
    delete = DeleteOp(op_id=uuid7(), entity="person", id=pid, hlc=tablet.hlc(), reason="duplicate")
    tablet.push([delete])

    page = tablet.pull(0, 100)
    assert page.camp_id == camp
    assert page.cursor == 0
    assert not page.has_more
    rows = {r.id: r for r in page.changes}
    assert set(rows) == {hid, pid, delivery.id}
    assert rows[hid].entity is Entity.HOUSEHOLD
    assert rows[hid].values["arrival_type"] == "deported"
    assert rows[hid].sets["needs"]["food"].present is True
    assert rows[pid].is_deleted
    assert rows[pid].deleted == delete.hlc
    assert rows[delivery.id].values["service"] == "tent"
    assert rows[delivery.id].values["voided"] is None
    # Each record travels once, at its latest change.
    assert rows[pid].seq > rows[hid].seq
    assert HLC.decode(page.server_hlc) > HLC.decode(delete.hlc)
    assert tablet.pull(page.next_cursor).changes == []


def test_incremental_pulls_return_only_what_changed_after_the_cursor(client, db: Engine) -> None:
    tablet = make_tablet(client, db)
    hid = uuid7()
    tablet.push([tablet.household(hid), tablet.household()])
    cursor = tablet.pull().next_cursor
    tablet.push([tablet.patch("household", hid, {"shelter_status": "host_family"})])
    page = tablet.pull(cursor)
    assert [r.id for r in page.changes] == [hid]
    assert page.changes[0].values["shelter_status"] == "host_family"
    # A coordinator's edit is a commit group of its own and reaches the tablet too.
    with Session(db) as session, session.begin():
        write = commit_server_edit(
            session=session,
            entity=Entity.HOUSEHOLD,
            entity_id=hid,
            fields={"shelter_status": "tent_assigned"},
            actor="user:test",
        )
    later = tablet.pull(page.next_cursor)
    assert later.next_cursor == write.seq
    assert later.changes[0].clocks["shelter_status"] == write.hlc


def test_pages_never_split_a_commit_group_and_any_page_size_converges(client, db: Engine) -> None:
    tablet = make_tablet(client, db)
    households = [uuid7() for _ in range(12)]
    tablet.push([tablet.household(h) for h in households[:5]])  # one group of 5
    for h in households[5:]:
        tablet.push([tablet.household(h)])  # groups of 1
    for h in households[:3]:
        tablet.push([tablet.patch("household", h, {"phone": "+93700000001"})])
    with Session(db) as session:
        groups = dict(
            session.execute(select(ChangeLog.seq, func.count()).group_by(ChangeLog.seq)).all()
        )
    expected = None
    for limit in (1, 2, 7, 100):
        cursor, seen, pages = 0, {}, 0
        while True:
            page = tablet.pull(cursor, limit)
            pages += 1
            in_page = {r.seq for r in page.changes}
            for seq in in_page:
                # every group in the page is whole: its other rows are not left for later
                assert seq <= page.next_cursor
            assert page.next_cursor >= cursor
            for row in page.changes:
                seen[row.id] = row
            if not page.has_more:
                break
            cursor = page.next_cursor
        assert set(seen) == set(households)
        state = {k: (v.values, v.clocks) for k, v in seen.items()}
        expected = expected or state
        assert state == expected
        if limit == 1:
            assert pages >= len(groups) - 1
    # The first group (5 creations) is larger than the page and travels whole; of its
    # records, the 3 edited later travel with their later change instead.
    big = tablet.pull(0, 1)
    assert big.next_cursor == min(groups)
    assert {r.id for r in big.changes} == set(households[3:5])


def test_provisioning_sends_current_rows_once_not_the_history(client, db: Engine) -> None:
    tablet = make_tablet(client, db)
    hid = uuid7()
    tablet.push([tablet.household(hid)])
    for n in range(20):
        tablet.push([tablet.patch("household", hid, {"phone": f"+9370000{n:04d}"})])
    fresh = make_tablet(client, db, tablet.camp_id)
    rows, cursor, _pages = fresh.pull_all(0, limit=5)
    assert list(rows) == [hid]
    assert rows[hid].values["phone"] == "+93700000019"
    delivered = 0
    page_cursor = 0
    while True:
        page = fresh.pull(page_cursor, 5)
        delivered += len(page.changes)
        page_cursor = page.next_cursor
        if not page.has_more:
            break
    assert delivered == 1
    with Session(db) as session:
        assert cursor == session.execute(select(func.max(ChangeLog.seq))).scalar_one()


def test_pull_needs_a_device_token(client, db: Engine) -> None:
    assert client.get("/v1/sync/changes").status_code == 401
    tablet = make_tablet(client, db)
    assert tablet.pull_raw().status_code == 200
    assert tablet.pull_raw(-1).status_code == 422
