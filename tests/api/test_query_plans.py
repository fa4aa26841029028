"""On PostgreSQL, the coordinator lists run on the indexes meant for them (EXPLAIN).

Tens of thousands of rows are generated in SQL, the tables analysed, and the statements the API
really sends (captured while it answers) are explained. Timings are in bench/coordinator_scale.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from tests.factories import bearer, make_camp, make_user

pytestmark = pytest.mark.postgres_only

ROWS = 20_000


def _load(db: Engine, camp: str, other: str) -> None:
    with db.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO household (id, camp_id, status, needs, vulnerabilities, clocks,
                                       set_clocks, is_deleted, created_at, updated_at)
                SELECT gen_random_uuid(), CASE WHEN g % 2 = 0 THEN :camp ELSE :other END,
                       'active', '["food"]'::jsonb, '[]'::jsonb, '{}'::jsonb, '{}'::jsonb,
                       false, now(), now() - make_interval(secs => g)
                FROM generate_series(1, :rows) AS g
                """
            ),
            {"camp": camp, "other": other, "rows": ROWS},
        )
        conn.execute(
            text(
                """
                INSERT INTO person (id, camp_id, household_id, status, vulnerabilities, name_keys,
                                    clocks, set_clocks, is_deleted, created_at, updated_at,
                                    given_name, family_name)
                SELECT gen_random_uuid(), h.camp_id, h.id, 'active', '[]'::jsonb,
                       jsonb_build_array('k' || (row_number() OVER () % 5000),
                                         'f' || (row_number() OVER () % 300)),
                       '{}'::jsonb, '{}'::jsonb, false, now(), now(), 'x', 'y'
                FROM household h
                """
            )
        )
        conn.execute(text("ANALYZE household"))
        conn.execute(text("ANALYZE person"))


@pytest.fixture
def statements(db: Engine) -> Iterator[list[tuple[str, Any]]]:
    captured: list[tuple[str, Any]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        captured.append((statement, parameters))

    event.listen(db, "before_cursor_execute", grab)
    yield captured
    event.remove(db, "before_cursor_execute", grab)


def _plan(db: Engine, statement: str, parameters: Any) -> dict[str, Any]:
    with db.connect() as conn:
        raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar_one()
    plan = raw if isinstance(raw, list) else json.loads(raw)
    return plan[0]["Plan"]  # type: ignore[no-any-return]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain_sent(db: Engine, captured: list[tuple[str, Any]], marker: str) -> dict[str, Any]:
    [(statement, parameters)] = [(s, p) for s, p in captured if marker in s]
    return _plan(db, statement, parameters)


def test_list_queries_use_their_indexes(
    client: TestClient, db: Engine, statements: list[tuple[str, Any]]
) -> None:
    camp, other = make_camp(db, "big-camp"), make_camp(db, "other-camp")
    _load(db, camp, other)
    token = make_user(db, "coordinator", [camp, other])
    first = client.get("/v1/households", params={"camp": camp}, headers=bearer(token))
    assert first.status_code == 200
    client.get(
        "/v1/households",
        params={"camp": camp, "needs": "food", "cursor": first.json()["next_cursor"]},
        headers=bearer(token),
    )
    client.get("/v1/persons", params={"camp": camp, "q": "k42 f42"}, headers=bearer(token))

    households = [s for s in statements if "FROM household" in s[0] and "LIMIT" in s[0]]
    assert len(households) == 2
    for statement, parameters in households:
        nodes = list(_nodes(_plan(db, statement, parameters)))
        used = {n.get("Index Name") for n in nodes}
        assert "ix_household_camp_id_id" in used, nodes
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes

    search = _explain_sent(db, statements, "name_keys @>")
    nodes = list(_nodes(search))
    assert "ix_person_name_keys" in {n.get("Index Name") for n in nodes}, nodes
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes


def test_the_merge_loads_rows_by_their_primary_key(
    client: TestClient, db: Engine, statements: list[tuple[str, Any]]
) -> None:
    """A push locks the rows it merges through the primary key, not a scan of the table.

    The ids travel as one JSON array; compared with ``IN (SELECT ...)`` the planner guessed
    100 of them and, against a table of some thousands of rows, scanned all of it.
    """
    from campsync_sync import uuid7

    from tests.factories import make_tablet

    camp, other = make_camp(db, "big-camp"), make_camp(db, "other-camp")
    _load(db, camp, other)
    tablet = make_tablet(client, db, camp)
    households = [uuid7() for _ in range(80)]
    ops = [tablet.household(hid) for hid in households]
    ops += [tablet.person(hid) for hid in households]
    tablet.push(ops)

    for table in ("household", "person"):
        [(statement, parameters)] = [
            (s, p) for s, p in statements if f"FROM {table} " in s and "FOR UPDATE" in s
        ]
        nodes = list(_nodes(_plan(db, statement, parameters)))
        assert f"pk_{table}" in {n.get("Index Name") for n in nodes}, nodes
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes
