"""The bulk registry store: round trip of merge states, commit sequence, change log."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator

import orjson
import pytest
from campsync_sync import Clock, Entity, FieldWrite, PatchOp, apply_registry_op, normalize_operation
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from api.registry import bulk, store
from api.registry.models import ChangeLog, Person
from tests.factories import make_camp


@contextlib.contextmanager
def _statements(db: Engine) -> Iterator[list[tuple[str, object]]]:
    """The statements ``db`` runs inside the block, with their parameters."""
    statements: list[tuple[str, object]] = []

    def seen(_conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        statements.append((statement, params))

    event.listen(db, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(db, "before_cursor_execute", seen)


def _person_op(clock: Clock, person_id: uuid.UUID, **fields: object) -> PatchOp:
    writes = {k: FieldWrite(value=v, hlc=str(clock.now())) for k, v in fields.items()}
    return PatchOp(op_id=uuid.uuid4(), entity="person", id=person_id, fields=writes)  # type: ignore[arg-type]


def _person_rows(camp: str, ids: list[uuid.UUID], **fields: object) -> list[dict[str, object]]:
    """Rows of new people, each its own household, ready for ``save_registry``."""
    clock = Clock(node=7)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for pid in ids:
        op = normalize_operation(_person_op(clock, pid, household_id=str(pid), **fields))
        assert isinstance(op, PatchOp)
        state, _ = apply_registry_op(Entity.PERSON, None, op)
        rows.append(
            store.registry_row(Entity.PERSON, pid, store.StoredRecord(camp, state), now=now)
        )
    return rows


def test_states_round_trip_through_rows(db: Engine) -> None:
    camp = make_camp(db)
    clock = Clock(node=42)
    pid = uuid.uuid4()
    op = normalize_operation(
        _person_op(
            clock,
            pid,
            household_id=str(uuid.uuid4()),
            given_name="Mohammad",
            family_name="Stanekzai",
            date_of_birth="1990-04-01",
        )
    )
    assert isinstance(op, PatchOp)
    state, _ = apply_registry_op(Entity.PERSON, None, op)
    now = dt.datetime.now(dt.UTC)
    with Session(db) as session, session.begin():
        row = store.registry_row(Entity.PERSON, pid, store.StoredRecord(camp, state), now=now)
        store.save_registry(session, Entity.PERSON, [row])
    with Session(db) as session:
        loaded = store.load_registry(session, Entity.PERSON, [pid], lock=True)
        person = session.get(Person, pid)
    assert loaded[pid].state == state
    assert loaded[pid].camp_id == camp
    assert person is not None
    assert person.date_of_birth == dt.date(1990, 4, 1)
    assert person.name_keys == ["mhmd", "stnkz"]


@pytest.mark.parametrize(
    ("entity", "fields"),
    [
        (
            Entity.PERSON,
            {
                "household_id": str(uuid.UUID(int=5)),
                "given_name": "Fatima",
                "date_of_birth": "2001-02-03",
                "phone": None,
            },
        ),
        (
            Entity.HOUSEHOLD,
            {"arrival_date": "2026-11-20", "head_person_id": str(uuid.UUID(int=6))},
        ),
    ],
)
def test_a_row_holds_every_column_once_in_its_stored_form(
    entity: Entity, fields: dict[str, object]
) -> None:
    clock = Clock(node=3)
    writes = {k: FieldWrite(value=v, hlc=str(clock.now())) for k, v in fields.items()}
    op = PatchOp(op_id=uuid.uuid4(), entity=entity.value, id=uuid.uuid4(), fields=writes)  # type: ignore[arg-type]
    state, _ = apply_registry_op(entity, None, normalize_operation(op))
    now = dt.datetime.now(dt.UTC)
    row = store.registry_row(entity, op.id, store.StoredRecord("c", state), now=now)
    assert set(row) == {c.name for c in store.REGISTRY_TABLES[entity].columns}
    assert row["status"] == "active"  # never written: the column's default
    assert row["clocks"] == state.clocks
    if entity is Entity.PERSON:
        assert row["household_id"] == uuid.UUID(int=5)
        assert row["date_of_birth"] == dt.date(2001, 2, 3)
        assert row["phone"] is None
        assert row["family_name"] is None  # never written
        assert row["name_keys"] == ["ftm"]
        assert row["vulnerabilities"] == []
    else:
        assert row["head_person_id"] == uuid.UUID(int=6)
        assert row["arrival_date"] == dt.date(2026, 11, 20)
        assert row["needs"] == []


def test_upsert_keeps_creation_metadata(db: Engine) -> None:
    camp = make_camp(db)
    clock = Clock(node=1)
    pid = uuid.uuid4()
    device = uuid.uuid4()
    first = normalize_operation(
        _person_op(clock, pid, household_id=str(uuid.uuid4()), sex="female")
    )
    second = normalize_operation(_person_op(clock, pid, sex="male"))
    assert isinstance(first, PatchOp)
    assert isinstance(second, PatchOp)
    state, _ = apply_registry_op(Entity.PERSON, None, first)
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with Session(db) as session, session.begin():
        record = store.StoredRecord(camp, state, created_by_device=device)
        store.save_registry(
            session, Entity.PERSON, [store.registry_row(Entity.PERSON, pid, record, now=created)]
        )
    with Session(db) as session, session.begin():
        loaded = store.load_registry(session, Entity.PERSON, [pid])[pid]
        loaded.state, _ = apply_registry_op(Entity.PERSON, loaded.state, second)
        later = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
        record = store.StoredRecord(camp, loaded.state, created_by_device=uuid.uuid4())
        store.save_registry(
            session, Entity.PERSON, [store.registry_row(Entity.PERSON, pid, record, now=later)]
        )
    with Session(db) as session:
        person = session.get(Person, pid)
    assert person is not None
    assert person.sex == "male"
    assert person.created_at == created
    assert person.created_by_device == device


def test_commit_sequence_increases_and_groups_changes(db: Engine) -> None:
    camp = make_camp(db)
    now = dt.datetime.now(dt.UTC)
    seqs = []
    for _ in range(3):
        with Session(db) as session, session.begin():
            seq = store.allocate_commit_seq(session)
            store.append_changes(
                session,
                seq,
                [store.Change(camp, Entity.HOUSEHOLD, uuid.uuid4(), "create") for _ in range(2)],
                now=now,
            )
            seqs.append(seq)
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    with Session(db) as session:
        logged = session.execute(select(ChangeLog.seq)).scalars().all()
    assert sorted(logged) == sorted(seqs * 2)


def test_server_edit_wins_over_stored_future_clocks_and_is_logged(db: Engine) -> None:
    from api.registry.writes import commit_server_edit

    camp = make_camp(db)
    pid = uuid.uuid4()
    # A tablet clock ten years ahead wrote the name; the coordinator's fix must still win.
    ahead = Clock(
        node=9, wall=lambda: int(dt.datetime(2036, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    )
    op = normalize_operation(
        _person_op(ahead, pid, household_id=str(uuid.uuid4()), given_name="Muhamad")
    )
    assert isinstance(op, PatchOp)
    state, _ = apply_registry_op(Entity.PERSON, None, op)
    now = dt.datetime.now(dt.UTC)
    with Session(db) as session, session.begin():
        store.save_registry(
            session,
            Entity.PERSON,
            [store.registry_row(Entity.PERSON, pid, store.StoredRecord(camp, state), now=now)],
        )
    with Session(db) as session, session.begin():
        write = commit_server_edit(
            session=session,
            entity=Entity.PERSON,
            entity_id=pid,
            fields={"given_name": "Muhammad"},
            actor="user:test",
        )
    assert write.hlc > state.clocks["given_name"]
    with Session(db) as session:
        person = session.get(Person, pid)
        log = session.execute(select(ChangeLog).where(ChangeLog.entity_id == pid)).scalars().one()
    assert person is not None
    assert person.given_name == "Muhammad"
    assert log.seq == write.seq
    assert log.kind == "resolve"
    assert log.changes == {"given_name": "Muhammad"}


def test_bulk_writes_more_rows_than_one_statement_can_bind(db: Engine) -> None:
    """SQLite binds at most so many variables a statement: the writer splits the rows."""
    import sqlite3

    ids = [uuid.uuid4() for _ in range(300)]
    rows = _person_rows(make_camp(db), ids, sex="male")
    with Session(db) as session, session.begin():
        driver = session.connection().connection.dbapi_connection
        limit = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
        if isinstance(driver, sqlite3.Connection):
            # Room for 9 rows a statement: 300 rows take 34 statements.
            original = driver.setlimit(limit, 9 * len(rows[0]))
        try:
            store.save_registry(session, Entity.PERSON, rows)
        finally:
            if isinstance(driver, sqlite3.Connection):
                driver.setlimit(limit, original)
    with Session(db) as session:
        loaded = store.load_registry(session, Entity.PERSON, ids)
    assert sorted(loaded) == sorted(ids)
    assert all(loaded[pid].state.values["sex"] == "male" for pid in ids)


def test_loads_bind_their_ids_as_one_value(db: Engine) -> None:
    """A batch's ids travel as one JSON array: one statement text, however many ids."""
    stored = [uuid.uuid4() for _ in range(120)]
    with Session(db) as session, session.begin():
        rows = _person_rows(make_camp(db), stored, sex="female")
        store.save_registry(session, Entity.PERSON, rows)
    absent = [uuid.uuid4() for _ in range(1_000)]
    with _statements(db) as statements, Session(db) as session, session.begin():
        loaded = store.load_registry(session, Entity.PERSON, stored + absent, lock=True)
        again = store.load_registry(session, Entity.PERSON, stored[:3], lock=True)
    assert sorted(loaded) == sorted(stored)
    assert all(loaded[pid].state.values["sex"] == "female" for pid in stored)
    assert sorted(again) == sorted(stored[:3])
    selects = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2
    assert selects[0][0] == selects[1][0]  # the same text for 1,120 ids and for 3
    assert all(len(p) == 1 for _, p in selects)  # type: ignore[arg-type]


def _change_rows(camp: str, count: int, **shared: object) -> list[dict[str, object]]:
    at = dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.UTC)
    rows: list[dict[str, object]] = []
    for n in range(count):
        row: dict[str, object] = {
            "seq": 7,
            "camp_id": camp,
            "entity": "person" if n % 2 else "household",
            "entity_id": uuid.uuid4(),
            "kind": "create",
            "op_id": uuid.uuid4(),
            "batch_id": None,
            "device_id": uuid.UUID(int=5),
            "actor": "worker-1",
            "hlc": f"{n:032x}",
            "changes": {"status": "active", "n": n},
            "at": at,
        }
        row.update(shared)
        rows.append(row)
    return rows


def _stored_changes(db: Engine) -> list[dict[str, object]]:
    with Session(db) as session:
        found = session.execute(select(ChangeLog).order_by(ChangeLog.id)).scalars().all()  # type: ignore[arg-type]
        return [row.model_dump(exclude={"id"}) for row in found]


def test_values_every_row_shares_are_written_like_the_others(db: Engine) -> None:
    """On PostgreSQL, a value all rows share travels once, outside the JSON document; the
    rows stored are the same, whatever the column's type, NULL and JSON included."""
    camp = make_camp(db)
    rows = _change_rows(camp, 5, changes={}, batch_id=None)
    with _statements(db) as statements, Session(db) as session, session.begin():
        bulk.write(session, ChangeLog.__table__, rows)  # type: ignore[attr-defined]
    assert _stored_changes(db) == rows
    if db.dialect.name == "postgresql":
        (sql, params), *_ = (s for s in statements if s[0].startswith("INSERT"))
        assert isinstance(params, tuple)
        *values, document = params
        at = rows[0]["at"]
        assert values == [7, camp, "create", None, uuid.UUID(int=5), "worker-1", "{}", at]
        assert set(orjson.loads(document)[0]) == {"entity", "entity_id", "op_id", "hlc"}
        assert sql.count("CAST(%s AS") == len(values)


def test_one_row_or_rows_alike_in_every_column_are_written_whole(db: Engine) -> None:
    """Sharing needs two rows and one column that differs; anything else goes as it is."""
    camp = make_camp(db)
    one = _change_rows(camp, 1)
    same = _change_rows(camp, 3, entity_id=uuid.UUID(int=9), op_id=None, hlc=None, entity="x")
    for row in same:
        row["changes"] = None
    with Session(db) as session, session.begin():
        bulk.write(session, ChangeLog.__table__, one)  # type: ignore[attr-defined]
        bulk.write(session, ChangeLog.__table__, same)  # type: ignore[attr-defined]
    assert _stored_changes(db) == one + same


def test_shared_values_are_told_apart_by_type() -> None:
    """``True == 1`` and ``1 == 1.0`` in Python: such values are not one value for a column."""
    assert bulk._shared([{"a": 1, "b": 0}, {"a": True, "b": 1}], ("a", "b")) == frozenset()
    assert bulk._shared([{"a": 1.0, "b": 0}, {"a": 1, "b": 1}], ("a", "b")) == frozenset()
    assert bulk._shared([{"a": None, "b": 0}, {"a": None, "b": 1}], ("a", "b")) == {"a"}
    assert bulk._shared([{"a": [], "b": 0}, {"a": [], "b": 1}], ("a", "b")) == {"a"}


def test_a_value_too_long_for_its_column_is_refused_also_when_shared(db: Engine) -> None:
    """A shared text value is cast unbounded, so the insert still checks its length."""
    if db.dialect.name == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    rows = _change_rows(make_camp(db), 3, actor="a" * 65)
    with pytest.raises(DBAPIError), Session(db) as session, session.begin():
        bulk.write(session, ChangeLog.__table__, rows)  # type: ignore[attr-defined]
    assert _stored_changes(db) == []
