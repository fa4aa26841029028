"""Pushing batches: receipts, idempotency, seq rules, per-operation outcomes, scope, flags."""

from __future__ import annotations

import datetime as dt
import uuid

from campsync_sync import HLC, Clock, Outcome, Receipt, RejectReason, node_id_for, uuid7
from sqlalchemy import Engine, select
from sqlmodel import Session

from api.audit.models import AuditLog
from api.main import create_app
from api.registry.models import ChangeLog, Conflict, Flag, Household, Person, ServiceDelivery
from api.sync.models import Batch, Quarantine
from tests.factories import bearer, make_camp, make_tablet, make_user
from tests.synccheck import table_counts


def _audit(db: Engine, action: str) -> list[AuditLog]:
    with Session(db) as session:
        return list(session.execute(select(AuditLog).where(AuditLog.action == action)).scalars())


def test_a_batch_is_merged_acknowledged_and_audited(client, db: Engine) -> None:
    tablet = make_tablet(client, db)
    hid = uuid7()
    ops = [
        tablet.household(hid, needs=["food", "shelter"]),
        tablet.person(hid, relationship_to_head="head", date_of_birth="1990-04-01"),
        tablet.person(hid, given_name="Muhammad"),
        tablet.service(hid, "tent"),
    ]
    receipt = tablet.push(ops, backlog=3)
    assert receipt.status == "applied"
    assert receipt.seq == 1
    assert receipt.next_seq == 2
    assert [r.outcome for r in receipt.results] == [Outcome.APPLIED] * 4
    assert [r.op_id for r in receipt.results] == [op.op_id for op in ops]
    assert receipt.commit_seq is not None
    with Session(db) as session:
        household = session.get(Household, hid)
        assert household is not None
        assert household.camp_id == tablet.camp_id
        assert household.needs == ["food", "shelter"]
        persons = session.execute(select(Person)).scalars().all()
        assert {p.camp_id for p in persons} == {tablet.camp_id}
        assert session.execute(select(ServiceDelivery)).scalar_one().service == "tent"
        log = session.execute(select(ChangeLog)).scalars().all()
        assert {c.seq for c in log} == {receipt.commit_seq}
        assert {c.kind for c in log} == {"create", "event"}
        assert {c.actor for c in log} == {"worker-1"}
        batch = session.get(Batch, receipt.batch_id)
        assert batch is not None
        assert batch.backlog == 3
        assert batch.op_count == 4
    [entry] = _audit(db, "sync.batch_applied")
    assert entry.details == {"seq": 1, "ops": 4, "applied": 4}
    assert "Canary" not in str(entry.details)


def test_the_same_batch_again_replays_its_receipt_even_after_a_restart(
    client, db: Engine, settings
) -> None:  # type: ignore[no-untyped-def]
    tablet = make_tablet(client, db)
    batch_id, data = tablet.seal_batch([tablet.household()])
    first = client.put(f"/v1/sync/batches/{batch_id}", content=data, headers=_octets())
    assert first.status_code == 200
    before = table_counts(db)
    again = client.put(f"/v1/sync/batches/{batch_id}", content=data, headers=_octets())
    assert again.status_code == 200
    assert tablet.receipt(again.content) == tablet.receipt(first.content)
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings, engine=db)) as restarted:
        tablet.http = restarted
        replay = tablet.put(batch_id, data)
        assert replay.status_code == 200
        assert tablet.receipt(replay.content) == tablet.receipt(first.content)
        fetched = restarted.get(f"/v1/sync/batches/{batch_id}", headers=tablet.auth())
        assert fetched.status_code == 200
        assert tablet.receipt(fetched.content) == tablet.receipt(first.content)
    assert table_counts(db) == before
    # The same batch id with other bytes is refused.
    tablet.http = client
    _, other = tablet.seal_batch([tablet.household()], seq=1, batch_id=batch_id)
    mismatch = tablet.put(batch_id, other)
    assert mismatch.status_code == 422
    assert mismatch.json()["error"]["code"] == "batch_mismatch"
    assert table_counts(db) == before


def _octets() -> dict[str, str]:
    return {"content-type": "application/octet-stream"}


def test_seq_gaps_and_reuse_are_refused_and_reuse_alerts(client, db: Engine) -> None:
    tablet = make_tablet(client, db)
    tablet.push([tablet.household()])
    batch_id, data = tablet.seal_batch([tablet.household()], seq=3)
    gap = tablet.put(batch_id, data)
    assert gap.status_code == 409
    assert gap.json()["error"]["code"] == "seq_gap"
    assert gap.json()["error"]["details"] == {"expected_seq": 2}
    batch_id, data = tablet.seal_batch([tablet.household()], seq=1)
    reused = tablet.put(batch_id, data)
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "seq_reused"
    [alert] = _audit(db, "sync.seq_reused")
    assert alert.entity_id == str(batch_id)
    assert alert.details == {"seq": 1, "expected_seq": 2}


def test_invalid_operations_are_rejected_and_quarantined_without_blocking(
    client, db: Engine
) -> None:
    tablet = make_tablet(client, db)
    hid = uuid7()
    good = tablet.household(hid)
    bad_value = tablet.household(arrival_type="teleported")
    unknown_field = tablet.patch("household", uuid7(), {"religion": "x"})
    malformed = {"op": "patch", "op_id": str(uuid7()), "entity": "spaceship", "id": "nope"}
    orphan = tablet.person(uuid7())
    no_household = tablet.patch("person", uuid7(), {"given_name": "Canary"})
    receipt = tablet.push([bad_value, good, unknown_field, malformed, orphan, no_household, good])
    outcomes = [(r.outcome, r.reason) for r in receipt.results]
    assert outcomes == [
        (Outcome.REJECTED, RejectReason.INVALID_VALUE),
        (Outcome.APPLIED, None),
        (Outcome.REJECTED, RejectReason.UNKNOWN_FIELD),
        (Outcome.REJECTED, RejectReason.INVALID_OPERATION),
        (Outcome.REJECTED, RejectReason.UNKNOWN_HOUSEHOLD),
        (Outcome.REJECTED, RejectReason.UNKNOWN_HOUSEHOLD),
        (Outcome.REJECTED, RejectReason.DUPLICATE_OP),
    ]
    assert all("Canary" not in (r.detail or "") for r in receipt.results)
    with Session(db) as session:
        quarantined = session.execute(select(Quarantine).order_by(Quarantine.op_index)).scalars()
        assert [q.op_index for q in quarantined] == [0, 2, 3, 4, 5, 6]
        assert session.get(Household, hid) is not None
    [entry] = _audit(db, "sync.batch_applied")
    assert entry.details["rejected"] == 6


def test_scope_is_the_device_camp(client, db: Engine) -> None:
    camp, other = make_camp(db), make_camp(db)
    here, there = make_tablet(client, db, camp), make_tablet(client, db, other)
    foreign = uuid7()
    foreign_person = uuid7()
    there.push([there.household(foreign), there.person(foreign, foreign_person)])
    mine = uuid7()
    receipt = here.push(
        [
            here.household(mine),
            here.person(foreign),  # a person in another camp's household
            here.patch("household", foreign, {"phone": "+93700000000"}),
            here.service(foreign),
            here.patch("person", foreign_person, {"household_id": str(mine)}),
            here.service(mine),
        ]
    )
    assert [(r.outcome, r.reason) for r in receipt.results] == [
        (Outcome.APPLIED, None),
        (Outcome.REJECTED, RejectReason.OUT_OF_SCOPE),
        (Outcome.REJECTED, RejectReason.OUT_OF_SCOPE),
        (Outcome.REJECTED, RejectReason.OUT_OF_SCOPE),
        (Outcome.REJECTED, RejectReason.OUT_OF_SCOPE),
        (Outcome.APPLIED, None),
    ]
    with Session(db) as session:
        assert session.get(Household, foreign).phone is None  # type: ignore[union-attr]


def test_a_revoked_device_is_quarantined_and_told_to_wipe(client, db: Engine) -> None:
    tablet = make_tablet(client, db)
    admin = make_user(db, "admin")
    client.post(f"/v1/devices/{tablet.device_id}/revoke", headers=bearer(admin))
    before = table_counts(db)
    batch_id, data = tablet.seal_batch([tablet.household()])
    for _ in range(2):
        response = tablet.put(batch_id, data)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "device_revoked"
        tablet.verify_wipe(response.json()["error"]["details"])
    after = table_counts(db)
    assert after["quarantine"] == before["quarantine"] + 1
    assert {k: v for k, v in after.items() if k != "quarantine"} == {
        k: v for k, v in before.items() if k != "quarantine"
    }
    with Session(db) as session:
        stored = session.execute(select(Quarantine)).scalar_one()
    assert stored.payload == data
    assert stored.reason == "device_revoked"
    listed = client.get("/v1/devices", headers=bearer(admin)).json()["items"]
    assert listed[0]["quarantined_batches"] == 1


def test_clocks_from_the_future_are_clamped_in_order_and_flagged(client, db: Engine) -> None:
    tablet = make_tablet(client, db)
    assert tablet.device_id is not None
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650)
    tablet.clock = Clock(
        node=node_id_for(tablet.device_id), wall=lambda: int(future.timestamp() * 1000)
    )
    hid = uuid7()
    first = tablet.household(hid, shelter_status="none")
    second = tablet.patch("household", hid, {"shelter_status": "tent_assigned"})
    receipt = tablet.push([first, second])
    assert [r.outcome for r in receipt.results] == [Outcome.FLAGGED, Outcome.FLAGGED]
    with Session(db) as session:
        household = session.get(Household, hid)
        flags = session.execute(select(Flag)).scalars().all()
    assert household is not None
    assert household.shelter_status == "tent_assigned"  # the later write still wins
    stamp = HLC.decode(household.clocks["shelter_status"])
    limit = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=301)
    assert stamp.millis <= limit.timestamp() * 1000
    assert stamp.node == node_id_for(tablet.device_id)
    assert {f.kind for f in flags} == {"clock_clamped"}
    assert {f.id for f in flags} == {i for r in receipt.results for i in r.flag_ids}
    # The history and the server's own clock hold the clamped stamps, not the future ones.
    with Session(db) as session:
        logged = sorted(
            session.execute(
                select(ChangeLog.hlc).where(ChangeLog.entity_id == hid)  # type: ignore[arg-type]
            ).scalars()
        )
    assert len(logged) == 2
    assert logged[-1] == household.clocks["shelter_status"]
    assert all(HLC.decode(h).millis <= limit.timestamp() * 1000 for h in logged)
    assert HLC.decode(receipt.server_hlc).millis <= limit.timestamp() * 1000


def test_double_distribution_is_stored_and_flagged(client, db: Engine) -> None:
    tablet = make_tablet(client, db)
    hid = uuid7()
    now = dt.datetime.now(dt.UTC)
    first = tablet.push([tablet.household(hid), tablet.service(hid, delivered_at=now)])
    assert first.results[1].outcome == Outcome.APPLIED
    again = tablet.service(hid, delivered_at=now + dt.timedelta(days=2))
    other_service = tablet.service(hid, "health_consultation")
    receipt = tablet.push([again, other_service])
    assert receipt.results[0].outcome == Outcome.FLAGGED
    assert receipt.results[1].outcome == Outcome.APPLIED
    with Session(db) as session:
        [flag] = session.execute(select(Flag)).scalars().all()
        assert session.get(ServiceDelivery, again.id) is not None
    assert flag.kind == "double_distribution"
    assert flag.household_id == hid
    assert flag.id == receipt.results[0].flag_ids[0]


def test_concurrent_identity_edits_open_a_conflict_naming_both_devices(client, db: Engine) -> None:
    camp = make_camp(db)
    one, two = make_tablet(client, db, camp), make_tablet(client, db, camp)
    hid, pid = uuid7(), uuid7()
    one.push([one.household(hid), one.person(hid, pid, given_name="Mohammad")])
    base = None  # neither saw the other's edit
    one.push([one.patch("person", pid, {"family_name": "Ahmadzai"}, bases={"family_name": base})])
    two.operator = "worker-2"
    receipt = two.push(
        [two.patch("person", pid, {"family_name": "Ahmadzay"}, bases={"family_name": base})]
    )
    assert receipt.results[0].outcome == Outcome.CONFLICT
    with Session(db) as session:
        conflict = session.execute(select(Conflict)).scalar_one()
    assert conflict.id == receipt.results[0].conflict_ids[0]
    assert conflict.field == "family_name"
    assert {conflict.current_value, conflict.incoming_value} == {"Ahmadzai", "Ahmadzay"}
    assert conflict.current_device_id == one.device_id
    assert conflict.incoming_device_id == two.device_id
    assert conflict.incoming_operator == "worker-2"
    assert conflict.current_hlc
    assert conflict.incoming_hlc
    assert conflict.camp_id == camp


def test_a_device_fetches_only_its_own_receipts(client, db: Engine) -> None:
    camp = make_camp(db)
    tablet, other = make_tablet(client, db, camp), make_tablet(client, db, camp)
    receipt = tablet.push([tablet.household()])
    mine = client.get(f"/v1/sync/batches/{receipt.batch_id}", headers=tablet.auth())
    assert Receipt.model_validate_json(tablet.open(mine.content, "receipt")) == receipt
    theirs = client.get(f"/v1/sync/batches/{receipt.batch_id}", headers=other.auth())
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "receipt_not_found"
    assert client.get(f"/v1/sync/batches/{uuid.uuid4()}").status_code == 401


def test_events_are_idempotent_by_id_and_voids_apply(client, db: Engine) -> None:
    tablet = make_tablet(client, db)
    hid = uuid7()
    delivery = tablet.service(hid, "tent")
    tablet.push([tablet.household(hid), delivery])
    from campsync_sync import VoidOp

    void = VoidOp(
        op_id=uuid7(),
        entity="service_delivery",
        id=delivery.id,
        hlc=tablet.hlc(),
        reason="recorded_in_error",
    )
    receipt = tablet.push([delivery, void])
    assert [r.outcome for r in receipt.results] == [Outcome.APPLIED, Outcome.APPLIED]
    tampered = delivery.model_copy(update={"service": "nfi_kit", "op_id": uuid7()})
    reused = tablet.push([tampered])
    assert reused.results[0].reason == RejectReason.ID_REUSED
    with Session(db) as session:
        row = session.get(ServiceDelivery, delivery.id)
    assert row is not None
    assert row.voided_hlc == void.hlc
    assert row.service == "tent"
