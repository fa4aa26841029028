"""Sync against the fake server: push, pull, retries, re-sealing, revocation, sneakernet."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from campsync_client import (
    AsyncTablet,
    DeviceRevoked,
    RetryPolicy,
    StoreNotFound,
    SyncProgress,
    Tablet,
    TransportError,
    UntrustedServer,
    Wiped,
    WrongPin,
    _outbox,
    _sync,
)
from campsync_client._http import Pause, run
from campsync_sync import Entity, RecordState

from tests.client.conftest import FAST_RETRY, PIN, TabletFactory
from tests.client.fakeserver import FakeServer
from tests.client.faults import Faulty

HEAD = {"given_name": "Mohammad", "family_name": "Karimi", "sex": "male", "birth_year": 1985}


def snapshot(tablet: Tablet) -> dict:
    out = {}
    for h in tablet.households():
        out[h.id] = (
            h.needs,
            h.shelter_status,
            tuple((p.id, p.given_name, p.family_name) for p in h.members),
        )
    return out


def server_snapshot(server: FakeServer) -> dict:
    out = {}
    persons = server.live(Entity.PERSON)
    for hid, state in server.live(Entity.HOUSEHOLD).items():
        assert isinstance(state, RecordState)
        members = sorted(
            (pid, p.values.get("given_name"), p.values.get("family_name"))
            for pid, p in persons.items()
            if isinstance(p, RecordState) and p.values.get("household_id") == str(hid)
        )
        head = state.values.get("head_person_id")
        members.sort(key=lambda m: (str(m[0]) != head, m[0]))
        out[hid] = (
            frozenset(state.members("needs")),
            state.values.get("shelter_status"),
            tuple(members),
        )
    return out


def test_push_then_pull_to_another_tablet(make_tablet: TabletFactory, server: FakeServer) -> None:
    a, b = make_tablet(), make_tablet()
    household = a.register_household(HEAD, [{"given_name": "Fatima"}], needs={"food"})
    seen: list[SyncProgress] = []
    report = a.sync(seen.append)
    assert (report.pushed, report.applied, report.batches, report.rejected) == (3, 3, 1, 0)
    assert report.pulled == 3
    assert seen[0] == SyncProgress("push", 0, 3)
    assert seen[-1].phase == "pull"
    assert a.pending() == 0
    assert not a.household(household.id).pending
    assert b.sync().pulled == 3
    assert b.household(household.id) == a.household(household.id)
    assert snapshot(a) == snapshot(b) == server_snapshot(server)
    assert a.status().last_sync_at is not None


def test_edits_merge_and_identity_clash_is_a_conflict(
    make_tablet: TabletFactory, server: FakeServer
) -> None:
    a, b = make_tablet(), make_tablet()
    household = a.register_household(HEAD, needs={"food"})
    a.sync()
    b.sync()
    head = household.head_person_id
    a.update_person(head, family_name="Kareemi")
    a.add_needs(household.id, "health")
    b.update_person(head, family_name="Karimy")
    b.add_needs(household.id, "wash")
    a.sync()
    report = b.sync()
    assert report.conflicts == 1
    (outcome,) = b.conflicts()
    assert (outcome.outcome, outcome.entity, outcome.record_id) == ("conflict", "person", head)
    a.sync()
    assert a.person(head).family_name == b.person(head).family_name
    assert a.household(household.id).needs == {"food", "health", "wash"}
    assert snapshot(a) == snapshot(b) == server_snapshot(server)
    assert [c.field for c in server.conflicts] == ["family_name"]


def test_a_pulled_page_never_overwrites_a_pending_edit(make_tablet: TabletFactory) -> None:
    a, b = make_tablet(), make_tablet()
    household = a.register_household(HEAD, shelter_status="none")
    a.sync()
    b.sync()
    b.update_household(household.id, shelter_status="host_family", crossing_point="Torkham")
    b.sync()
    a.update_household(household.id, shelter_status="tent_assigned")  # after b's edit: wins
    # Pull only, with the edit still queued.
    run(a._session._pull_all(_sync_report(), None), a._http)
    seen = a.household(household.id)
    assert (seen.shelter_status, seen.crossing_point, seen.pending) == (
        "tent_assigned",
        "Torkham",
        True,
    )
    a.sync()
    b.sync()
    assert b.household(household.id).shelter_status == "tent_assigned"
    assert snapshot(a) == snapshot(b)


def _sync_report():  # type: ignore[no-untyped-def]
    from campsync_client import SyncReport

    return SyncReport()


def test_lost_acknowledgement_is_resent_byte_for_byte(server: FakeServer, tmp_path: Path) -> None:
    faulty = Faulty(server.transport())
    tablet = Tablet.enroll(
        server.url, server.code(), tmp_path / "t.db", PIN, transport=faulty, retry=FAST_RETRY
    )
    tablet.register_household(HEAD)
    faulty.add("PUT", "drop_response", times=4)  # every attempt of this sync
    with pytest.raises(TransportError) as caught:
        tablet.sync()
    assert caught.value.batch_id is not None
    assert server.applied_ops == 2
    assert tablet.pending() == 2
    tablet.close()
    again = Tablet.open(tmp_path / "t.db", PIN, transport=faulty, retry=FAST_RETRY)
    report = again.sync()
    assert (report.pushed, report.applied) == (2, 2)
    assert server.applied_ops == 2  # the retries were recognised, nothing applied twice
    assert len(server.batches) == 1
    assert [line for line in faulty.seen if line.startswith("PUT")] == [
        f"PUT /v1/sync/batches/{caught.value.batch_id}"
    ] * 5
    again.close()


def test_busy_server_is_retried_then_reported(
    make_tablet: TabletFactory, server: FakeServer
) -> None:
    faulty = Faulty(server.transport())
    tablet = make_tablet(transport=faulty)
    tablet.register_household(HEAD)
    faulty.add("PUT", "status:503", times=3)
    assert tablet.sync().pushed == 2
    tablet.register_household(HEAD)
    faulty.add("PUT", "status:429", times=4)
    with pytest.raises(TransportError, match="busy"):
        tablet.sync()
    assert tablet.pending() == 2


def test_backoff_honours_retry_after_and_full_jitter() -> None:
    policy = RetryPolicy(attempts=3, base_delay=1, max_delay=30)
    assert policy.delay(1, retry_after=7) == 7
    assert policy.delay(1, retry_after=900) == 30
    assert all(
        0 <= policy.delay(n) <= min(30, 2 ** (n - 1)) for n in range(1, 8) for _ in range(20)
    )
    request = httpx.Request("GET", "http://x/")
    flow = _sync._send(policy, lambda: request)
    assert next(flow) is request
    busy = httpx.Response(429, headers={"Retry-After": "12"}, request=request)
    assert flow.send(busy) == Pause(12)
    assert next(flow) is request
    assert isinstance(flow.throw(httpx.ConnectError("down", request=request)), Pause)
    assert next(flow) is request
    with pytest.raises(TransportError, match="unreachable"):
        flow.throw(httpx.ConnectError("down", request=request))


def test_destroyed_key_is_resealed_with_the_same_batch_id_and_seq(
    make_tablet: TabletFactory, server: FakeServer, tmp_path: Path
) -> None:
    tablet = make_tablet()
    tablet.register_household(HEAD)
    (exported,) = tablet.export_batches(tmp_path / "usb")
    server.rotate(destroy_old=True)
    assert tablet.sync().pushed == 2
    batch_id = uuid.UUID(exported.stem)
    assert batch_id in server.batches
    assert server.batches[batch_id][2] == 1
    assert server.batches[batch_id][0] != _digest(exported.read_bytes())  # sealed again


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_exported_batches_then_sync_apply_once(
    make_tablet: TabletFactory, server: FakeServer, tmp_path: Path
) -> None:
    tablet = make_tablet()
    for _ in range(3):
        tablet.register_household(HEAD)
    files = tablet.export_batches(tmp_path / "usb")
    assert files == tablet.export_batches(tmp_path / "usb")  # nothing new sealed
    assert all(f.name.endswith(".batch") and f.stat().st_mode & 0o077 == 0 for f in files)
    for file in files:  # the admin imports the USB stick first
        response = server.handle(
            httpx.Request(
                "PUT", f"{server.url}/v1/sync/batches/{file.stem}", content=file.read_bytes()
            )
        )
        assert response.status_code == 200
    assert server.applied_ops == 6
    report = tablet.sync()
    assert (report.pushed, report.applied) == (6, 6)
    assert server.applied_ops == 6
    assert tablet.pending() == 0


def test_many_batches_and_pages(
    make_tablet: TabletFactory, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_outbox, "MAX_BATCH_OPS", 7)
    monkeypatch.setattr(_sync, "PAGE_SIZE", 5)
    a, b = make_tablet(), make_tablet()
    for i in range(12):
        a.register_household({"given_name": f"Name{i}"}, [{"given_name": "Child"}])
    report = a.sync()
    assert report.batches == 6
    assert report.pushed == 36
    assert b.sync().pulled == 36
    assert snapshot(a) == snapshot(b) == server_snapshot(server)


def test_pages_shrink_to_the_servers_limit(make_tablet: TabletFactory, server: FakeServer) -> None:
    a, b = make_tablet(), make_tablet()
    for i in range(5):
        a.register_household({"given_name": f"Name{i}"})
    a.sync()
    server.max_page_size = 3
    assert b.sync().pulled == 10
    assert snapshot(a) == snapshot(b)


def test_a_server_restored_from_backup_is_pulled_again_from_zero(
    make_tablet: TabletFactory, server: FakeServer
) -> None:
    tablet = make_tablet()
    tablet.register_household(HEAD)
    tablet.sync()
    assert tablet.status().cursor == 1
    server.counter = 0  # the change log lost its newest entry: our cursor is unknown
    for stored in server.records.values():
        stored.seq = 0
    tablet.sync()
    assert tablet.status().cursor == 0
    assert len(tablet.households()) == 1


def test_double_distribution_is_kept_and_flagged(make_tablet: TabletFactory) -> None:
    a, b = make_tablet(), make_tablet()
    household = a.register_household(HEAD)
    a.sync()
    b.sync()
    a.record_service(household.id, "food_ration")
    b.record_service(household.id, "food_ration")
    assert a.sync().flagged == 0
    report = b.sync()
    assert report.flagged == 1
    assert b.conflicts()[0].outcome == "flagged"
    a.sync()
    assert len(a.services(household.id)) == len(b.services(household.id)) == 2


def test_revoked_tablet_wipes_itself(make_tablet: TabletFactory, server: FakeServer) -> None:
    tablet = make_tablet()
    tablet.register_household(HEAD)
    path = tablet._r.store.path
    server.revoke(tablet.device_id)
    report = tablet.sync()
    assert report.wiped
    assert not path.exists()
    assert not Path(f"{path}-wal").exists()
    assert server.applied_ops == 0
    with pytest.raises(Wiped):
        tablet.households()
    with pytest.raises(StoreNotFound):
        Tablet.open(path, PIN)


def test_forged_wipe_order_wipes_nothing(make_tablet: TabletFactory, server: FakeServer) -> None:
    tablet = make_tablet()
    tablet.register_household(HEAD)
    server.revoke(tablet.device_id)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    server.wipe_key = Ed25519PrivateKey.generate()  # a proxy forging the order
    with pytest.raises(DeviceRevoked):
        tablet.sync()
    assert len(tablet.households()) == 1


def test_enrolment_pins_the_server_key(server: FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with pytest.raises(UntrustedServer):
        Tablet.enroll(
            server.url,
            server.code(),
            path,
            PIN,
            server_key_fingerprint="00" * 32,
            transport=server.transport(),
        )
    assert not path.exists()
    tablet = Tablet.enroll(
        None, server.invite(), path, PIN, transport=server.transport(), retry=FAST_RETRY
    )
    assert tablet.camp_id == server.camp_id
    tablet.register_household(HEAD)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    server.signing_key = Ed25519PrivateKey.generate()  # another server now answers
    with pytest.raises(UntrustedServer):
        tablet.sync()
    tablet.close()


def test_wrong_pin_decrypts_nothing(tablet: Tablet) -> None:
    household = tablet.register_household(HEAD)
    path = tablet._r.store.path
    tablet.close()
    for pin in ("1357", "12", "2468 "):
        with pytest.raises(WrongPin):
            Tablet.open(path, pin)
    with Tablet.open(path, PIN) as again:
        assert again.household(household.id).head.given_name == "Mohammad"  # type: ignore[union-attr]
        again.change_pin("97531")
    with pytest.raises(WrongPin):
        Tablet.open(path, PIN)
    Tablet.open(path, "97531").close()


def test_async_tablet(server: FakeServer, tmp_path: Path) -> None:
    async def main() -> None:
        a = await AsyncTablet.enroll(
            server.url,
            server.code(),
            tmp_path / "a.db",
            PIN,
            transport=server.transport(),
            retry=FAST_RETRY,
        )
        household = a.register_household(HEAD, needs={"food"})
        assert (await a.sync()).pushed == 2
        await a.aclose()
        async with await AsyncTablet.open(
            tmp_path / "a.db", PIN, transport=server.transport()
        ) as again:
            assert again.household(household.id).needs == {"food"}
            assert (await again.sync()).pushed == 0

    asyncio.run(main())
