"""Concurrency and faults on both databases: no lost update, no missed row, no partial batch."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from campsync_sync import Outcome, PullPage, Receipt, uuid7
from sqlalchemy import Engine, event, select
from sqlmodel import Session

from api.devices.models import Device
from api.registry.models import Household
from api.sync import keys as server_keys
from api.sync import pull, service
from api.sync.keys import Keyring
from tests.factories import make_camp, make_tablet
from tests.synccheck import table_counts
from tests.synckit import Tablet


@pytest.fixture
def keyring(db: Engine, settings, monkeypatch) -> Keyring:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(server_keys, "_REFRESH_SECONDS", 3600.0)
    return Keyring(db, settings)


def _push(db: Engine, settings, keyring: Keyring, tablet: Tablet, sealed) -> Receipt:  # type: ignore[no-untyped-def]
    batch_id, data = sealed
    result = service.push_batch(
        engine=db, settings=settings, keyring=keyring, batch_id=batch_id, data=data
    )
    return tablet.receipt(result.envelope)


@contextmanager
def _hook(engine: Engine, fn: Any) -> Iterator[None]:
    event.listen(engine, "before_cursor_execute", fn)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", fn)


def test_concurrent_merges_of_one_household_lose_no_update(
    client, db: Engine, settings, keyring: Keyring
) -> None:  # type: ignore[no-untyped-def]
    camp = make_camp(db)
    one, two = make_tablet(client, db, camp), make_tablet(client, db, camp)
    hid = uuid7()
    one.push([one.household(hid)])
    paused = threading.Event()
    holder = threading.current_thread

    slow_thread: list[threading.Thread] = []

    def stall(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        # The first merge stalls right after loading (and on PostgreSQL locking) the row.
        if (
            slow_thread
            and holder() is slow_thread[0]
            and statement.lstrip().upper().startswith("SELECT")
            and "FROM household" in statement
            and not paused.is_set()
        ):
            paused.set()
            time.sleep(0.4)

    rounds = 6
    with _hook(db, stall):
        for n in range(rounds):
            paused.clear()
            first = one.seal_batch(
                [
                    one.patch(
                        "household",
                        hid,
                        {"crossing_point": f"gate-{n}"},
                        sets={
                            "needs": [
                                f"{['food', 'wash', 'cash', 'nfi', 'health', 'education'][n]}"
                            ]
                        },
                    )
                ]
            )
            second = two.seal_batch(
                [
                    two.patch(
                        "household",
                        hid,
                        {"shelter_location": f"block-{n}"},
                        sets={"vulnerabilities": ["disability"] if n % 2 else ["single_parent"]},
                    )
                ]
            )
            results: list[Receipt] = []
            a = threading.Thread(
                target=lambda out=results, sealed=first: out.append(
                    _push(db, settings, keyring, one, sealed)
                )
            )
            slow_thread[:] = [a]
            a.start()
            assert paused.wait(5)
            results.append(_push(db, settings, keyring, two, second))
            a.join()
            assert len(results) == 2
            with Session(db) as session:
                row = session.get(Household, hid)
                assert row is not None
                assert row.crossing_point == f"gate-{n}", n
                assert row.shelter_location == f"block-{n}", n
    with Session(db) as session:
        row = session.get(Household, hid)
    assert row is not None
    assert set(row.needs) == {"food", "wash", "cash", "nfi", "health", "education"}
    assert set(row.vulnerabilities) == {"disability", "single_parent"}


def test_the_same_batch_pushed_at_once_has_one_effect(
    client, db: Engine, settings, keyring: Keyring
) -> None:  # type: ignore[no-untyped-def]
    tablet = make_tablet(client, db)
    sealed = tablet.seal_batch([tablet.household() for _ in range(50)])
    outcomes: list[Any] = []

    def push() -> None:
        try:
            outcomes.append(_push(db, settings, keyring, tablet, sealed))
        except service.DomainError as exc:
            outcomes.append(exc.code.value)

    threads = [threading.Thread(target=push) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    receipts = [o for o in outcomes if isinstance(o, Receipt)]
    assert receipts
    assert all(r == receipts[0] for r in receipts)
    assert {o for o in outcomes if isinstance(o, str)} <= {"batch_in_flight"}
    assert table_counts(db)["household"] == 50
    assert table_counts(db)["batch"] == 1


def test_a_fault_at_any_statement_leaves_no_partial_batch_and_the_retry_succeeds(
    client, db: Engine, settings, keyring: Keyring
) -> None:  # type: ignore[no-untyped-def]
    camp = make_camp(db)
    tablet, other = make_tablet(client, db, camp), make_tablet(client, db, camp)
    hid = uuid7()
    persons = [uuid7() for _ in range(100)]
    other.push(
        [other.household(hid), other.service(hid, "food_ration")]
        + [other.person(hid, pid, family_name="Ahmadzai") for pid in persons]
    )
    keyring.current()
    fresh = iter(persons)

    def batch() -> list[Any]:
        # Every kind of write: registry rows, an event, a conflict, a flag, a rejection.
        return [
            tablet.household(),
            tablet.patch("person", next(fresh), {"family_name": "Ahmadzay"}),
            tablet.service(hid, "food_ration"),
            tablet.household(arrival_type="nowhere"),
        ]

    counted = 0

    def count(*_: Any) -> None:
        nonlocal counted
        counted += 1

    with _hook(db, count):
        baseline = _push(db, settings, keyring, tablet, tablet.seal_batch(batch()))
    expected = [r.outcome for r in baseline.results]
    assert expected == [Outcome.APPLIED, Outcome.CONFLICT, Outcome.FLAGGED, Outcome.REJECTED]
    statements = counted
    assert statements >= 10
    for k in range(1, statements + 1):
        sealed = tablet.seal_batch(batch())
        before = table_counts(db)
        seen = 0

        def fault(*_: Any, k: int = k) -> None:
            nonlocal seen
            seen += 1
            if seen == k:
                raise RuntimeError("injected fault")

        with _hook(db, fault), pytest.raises((RuntimeError, service.DomainError)):
            _push(db, settings, keyring, tablet, sealed)
        after = table_counts(db)
        # Only the audit of nothing: a failed push leaves every table as it was.
        assert after == before, k
        receipt = _push(db, settings, keyring, tablet, sealed)
        assert [r.outcome for r in receipt.results] == expected, k
        again = _push(db, settings, keyring, tablet, sealed)
        assert again == receipt
    with Session(db) as session:
        device = session.get(Device, tablet.device_id)
    assert device is not None
    assert device.last_seq == statements + 1


def test_a_push_runs_the_same_statements_whatever_its_size(
    client, db: Engine, settings, keyring: Keyring
) -> None:  # type: ignore[no-untyped-def]
    camp = make_camp(db)
    tablet = make_tablet(client, db, camp)
    keyring.current()

    def family(people: int) -> list[Any]:
        hid = uuid7()
        return [tablet.household(hid)] + [tablet.person(hid) for _ in range(people)]

    def statements(ops: list[Any]) -> list[str]:
        sealed = tablet.seal_batch(ops)
        seen: list[str] = []
        with _hook(db, lambda _c, _k, statement, *_: seen.append(statement.split()[0])):
            receipt = _push(db, settings, keyring, tablet, sealed)
        assert {r.outcome for r in receipt.results} == {Outcome.APPLIED}
        return seen

    small = statements(family(2))
    large = statements(family(2) + [op for _ in range(40) for op in family(5)])
    # One statement per table and step, however many rows: no per-row SQL anywhere.
    assert large == small
    assert len(small) <= 20, small


@contextmanager
def _between_draft_and_turn(monkeypatch, action: Any) -> Iterator[list[int]]:  # type: ignore[no-untyped-def]
    """Run ``action`` once, after the next push drafted its merge and before its write turn.

    Yields the number of merges each push ran (two when a draft was thrown away).
    """
    from api.sync.merge import BatchMerger

    drafted, merges = service._draft, [0]
    armed = [True]

    def draft(*args: Any) -> Any:
        result = drafted(*args)
        if armed[0]:
            armed[0] = False
            action()
        return result

    original = BatchMerger.merge

    def merge(self: BatchMerger) -> None:
        merges[0] += 1
        original(self)

    monkeypatch.setattr(service, "_draft", draft)
    monkeypatch.setattr(BatchMerger, "merge", merge)
    yield merges


def test_a_draft_merge_is_kept_when_nothing_it_read_changed(
    client, db: Engine, settings, keyring: Keyring, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    camp = make_camp(db)
    one, two = make_tablet(client, db, camp), make_tablet(client, db, camp)
    keyring.current()
    hid = uuid7()
    sealed = one.seal_batch([one.household(hid), one.person(hid)])
    other = two.seal_batch([two.household()])
    with _between_draft_and_turn(
        monkeypatch, lambda: _push(db, settings, keyring, two, other)
    ) as merges:
        receipt = _push(db, settings, keyring, one, sealed)
    assert [r.outcome for r in receipt.results] == [Outcome.APPLIED, Outcome.APPLIED]
    # SQLite drafts before its turn and keeps the draft; PostgreSQL merges under row locks.
    assert merges[0] == 2
    assert table_counts(db)["household"] == 2


def _race(
    client, db: Engine, settings, keyring: Keyring, monkeypatch, mine: Any, theirs: Any
) -> tuple[Receipt, uuid.UUID]:  # type: ignore[no-untyped-def]
    """Push ``mine(tablet, hid)`` while ``theirs(other, hid)`` lands between its draft and turn.

    Returns its receipt and the household both touch.
    """
    camp = make_camp(db)
    one, two = make_tablet(client, db, camp), make_tablet(client, db, camp)
    keyring.current()
    hid = uuid7()
    _push(db, settings, keyring, one, one.seal_batch([one.household(hid)]))
    sealed, other = one.seal_batch([mine(one, hid)]), two.seal_batch([theirs(two, hid)])
    with _between_draft_and_turn(
        monkeypatch, lambda: _push(db, settings, keyring, two, other)
    ) as merges:
        receipt = _push(db, settings, keyring, one, sealed)
    # SQLite merged this push twice (the draft, then under the lock); PostgreSQL once.
    assert merges[0] == (3 if db.dialect.name == "sqlite" else 2)
    return receipt, hid


def test_a_draft_merge_is_redone_when_a_record_it_read_changed(
    client, db: Engine, settings, keyring: Keyring, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    _, hid = _race(
        client,
        db,
        settings,
        keyring,
        monkeypatch,
        lambda tablet, hid: tablet.patch("household", hid, {"crossing_point": "Torkham"}),
        lambda tablet, hid: tablet.patch("household", hid, {"phone": "+93700000000"}),
    )
    with Session(db) as session:
        household = session.get(Household, hid)
    assert household is not None
    # Neither edit is lost.
    assert (household.crossing_point, household.phone) == ("Torkham", "+93700000000")


def test_a_draft_merge_is_redone_when_a_delivery_lands_in_the_camp(
    client, db: Engine, settings, keyring: Keyring, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    def delivery(tablet: Tablet, hid: uuid.UUID) -> Any:
        return tablet.service(hid, "food_ration")

    receipt, _ = _race(client, db, settings, keyring, monkeypatch, delivery, delivery)
    # The delivery that landed first makes this one a possible double distribution.
    assert [r.outcome for r in receipt.results] == [Outcome.FLAGGED]


WRITES = int(os.environ.get("CAMPSYNC_S7_WRITES", "10000"))


def test_pullers_miss_no_row_while_writers_hold_transactions_open(
    client, db: Engine, settings, keyring: Keyring
) -> None:  # type: ignore[no-untyped-def]
    camp = make_camp(db)
    writers = [make_tablet(client, db, camp) for _ in range(8)]
    pullers = [make_tablet(client, db, camp) for _ in range(4)]
    per_batch = 100
    batches_each = max(1, WRITES // per_batch // len(writers))
    keyring.current()
    rng = random.Random(7)
    delays: dict[int, tuple[float, float]] = {}

    def stall(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        # Hold each transaction open 0-500 ms, split around the commit-seq allocation.
        delay = delays.get(threading.get_ident())
        if delay is None or "sync_counter" not in statement:
            return
        time.sleep(delay[0])
        delays[threading.get_ident()] = (delay[1], 0.0)

    written: dict[uuid.UUID, Any] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def write(tablet: Tablet, seed: int) -> None:
        local = random.Random(seed)
        mine: list[uuid.UUID] = []
        try:
            for _ in range(batches_each):
                ops = []
                for _ in range(per_batch):
                    if mine and local.random() < 0.1:
                        target = local.choice(mine)
                        ops.append(
                            tablet.patch(
                                "household", target, {"phone": f"+93{local.randrange(10**8):08d}"}
                            )
                        )
                    else:
                        hid = uuid7()
                        mine.append(hid)
                        ops.append(tablet.household(hid))
                total = local.uniform(0, 0.5)
                split = local.uniform(0, total)
                delays[threading.get_ident()] = (split, total - split)
                _push(db, settings, keyring, tablet, tablet.seal_batch(ops))
            with lock:
                for hid in mine:
                    written[hid] = True
        except BaseException as exc:
            errors.append(exc)

    done = threading.Event()
    seen: list[dict[uuid.UUID, Any]] = [{} for _ in pullers]

    def read(index: int, tablet: Tablet, limit: int) -> None:
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                with Session(db) as session:
                    device = session.get(Device, tablet.device_id)
                    assert device is not None
                    data = pull.pull_page(
                        session=session,
                        keys=keyring.current(),
                        device=device,
                        cursor=cursor,
                        limit=limit,
                    )
                page = PullPage.model_validate_json(tablet.open(data, "pull"))
                assert page.next_cursor >= cursor
                for row in page.changes:
                    seen[index][row.id] = row
                cursor = page.next_cursor
                if finished and not page.has_more:
                    return
                if not page.has_more:
                    time.sleep(0.05)
        except BaseException as exc:
            errors.append(exc)

    with _hook(db, stall):
        threads = [threading.Thread(target=write, args=(t, rng.randrange(10**9))) for t in writers]
        readers = [
            threading.Thread(target=read, args=(i, t, limit))
            for i, (t, limit) in enumerate(zip(pullers, (1, 7, 100, 500), strict=True))
        ]
        for t in threads + readers:
            t.start()
        for t in threads:
            t.join()
        done.set()
        for t in readers:
            t.join()
    assert not errors, errors[:3]
    with Session(db) as session:
        stored = {
            h.id: (h.phone, h.clocks)
            for h in session.execute(select(Household).where(Household.camp_id == camp)).scalars()
        }
    assert len(written) == len(stored) >= batches_each * len(writers) * per_batch * 0.85
    for index, rows in enumerate(seen):
        assert set(rows) == set(stored), f"puller {index} missed {len(set(stored) - set(rows))}"
        pulled = {k: (v.values.get("phone"), v.clocks) for k, v in rows.items()}
        assert pulled == stored, f"puller {index} holds stale rows"
