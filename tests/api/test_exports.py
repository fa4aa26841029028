"""CSV exports: purpose, scopes, pseudonyms, formula injection, streaming, audit."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from campsync_sync import Entity
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import Session

from api.audit.models import AuditLog
from api.db import write_session
from api.exports.service import safe_cell
from api.registry.writes import commit_server_edit
from tests.factories import bearer, make_camp, make_user
from tests.registry_factories import make_household, make_person

PURPOSE = "WFP food distribution round 3 (DSA 2026-014)"


def _rows(response) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    text = response.content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def _family(db: Engine, camp: str, name: str = "Mohammad", **household: object) -> uuid.UUID:
    household_id = make_household(db, camp, needs=["food"], phone="+93700111222", **household)
    head = make_person(
        db,
        camp,
        household_id,
        given_name=name,
        family_name="Stanekzai",
        relationship_to_head="head",
        date_of_birth="1985-01-01",
    )
    make_person(db, camp, household_id, relationship_to_head="child", birth_year=2020)
    with write_session(db) as session:
        commit_server_edit(
            session=session,
            entity=Entity.HOUSEHOLD,
            entity_id=household_id,
            fields={"head_person_id": str(head)},
            actor="test",
        )
    return household_id


def _export(client: TestClient, token: str, **body: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/exports", json={"purpose": PURPOSE, **body}, headers=bearer(token))


def test_a_distribution_list_with_personal_columns_and_the_scope(
    client: TestClient, db: Engine
) -> None:
    camp = make_camp(db)
    household = _family(db, camp)
    make_household(db, camp, needs=["shelter"])
    token = make_user(db, "coordinator", [camp], scopes=["pii:export"])
    response = _export(
        client,
        token,
        camp=camp,
        filters={"needs": ["food"]},
        columns=[
            "household_id",
            "head_given_name",
            "head_family_name",
            "phone",
            "members",
            "needs",
        ],
    )
    [row] = _rows(response)
    assert row == {
        "household_id": str(household),
        "head_given_name": "Mohammad",
        "head_family_name": "Stanekzai",
        "phone": "'+93700111222",  # a leading + would make a spreadsheet compute it
        "members": "2",
        "needs": "food",
    }
    assert response.headers["x-export-rows"] == "1"
    assert f"campsync-{camp}-households-" in response.headers["content-disposition"]


def test_without_the_scope_personal_columns_are_403_and_ids_pseudonymous(
    client: TestClient, db: Engine
) -> None:
    camp = make_camp(db)
    household = _family(db, camp)
    token = make_user(db, "coordinator", [camp])
    refused = _export(client, token, camp=camp, columns=["household_id", "head_given_name"])
    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {
        "required": ["pii:export"],
        "columns": ["head_given_name"],
    }
    [row] = _rows(_export(client, token, camp=camp))
    assert row["household_id"].startswith("hh-")
    assert str(household) not in row.values()
    assert "Mohammad" not in str(row)
    assert "+93700111222" not in str(row)
    assert row["head_age_band"] == "18-59"
    # Stable across exports and callers: partners can join their files.
    other = make_user(db, "integrator", [camp])
    [again] = _rows(_export(client, other, camp=camp, columns=["household_id"]))
    assert again["household_id"] == row["household_id"]
    people = _rows(_export(client, token, camp=camp, entity="person"))
    assert {p["household_id"] for p in people} == {row["household_id"]}
    assert all(p["person_id"].startswith("pp-") for p in people)


def test_person_export_filters_and_columns(client: TestClient, db: Engine) -> None:
    camp = make_camp(db)
    _family(db, camp, name="Zarmina")
    token = make_user(db, "integrator", [camp], scopes=["pii:export"])
    rows = _rows(
        _export(
            client,
            token,
            camp=camp,
            entity="person",
            filters={"sex": ["female"]},
            columns=["given_name", "date_of_birth", "age_band", "relationship_to_head"],
        )
    )
    assert {r["given_name"] for r in rows} == {"Zarmina", ""}
    assert sorted(r["age_band"] for r in rows) == ["18-59", "5-11"]


def test_every_export_is_audited_with_purpose_filters_and_row_count(
    client: TestClient, db: Engine
) -> None:
    camp = make_camp(db)
    _family(db, camp)
    _family(db, camp, name="Ahmad")
    token = make_user(db, "coordinator", [camp], scopes=["pii:export"])
    response = _export(
        client, token, camp=camp, filters={"needs": ["food"]}, columns=["head_given_name"]
    )
    assert len(_rows(response)) == 2
    with Session(db) as session:
        [entry] = session.execute(
            select(AuditLog).where(AuditLog.action == "export.create")
        ).scalars()
    assert entry.camp_id == camp
    assert entry.actor_id is not None
    assert entry.actor_id.startswith("user:")
    assert entry.details == {
        "purpose": PURPOSE,
        "filters": {"needs": ["food"]},
        "columns": ["head_given_name"],
        "personal": True,
        "pseudonymous_ids": False,
        "rows": 2,
    }
    assert "Mohammad" not in str(entry.details)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"purpose": "short"},
        {"purpose": "x" * 201},
        {"columns": ["not_a_column"]},
        {"entity": "person", "columns": ["members"]},
        {"filters": {"q": "Mohammad"}},
        {"entity": "vehicle"},
    ],
)
def test_purpose_is_required_and_inputs_are_bounded(
    client: TestClient, db: Engine, body: dict[str, object]
) -> None:
    camp = make_camp(db)
    token = make_user(db, "admin")
    payload = {"camp": camp, "purpose": PURPOSE, **body}
    if body == {}:
        payload.pop("purpose")
    response = client.post("/v1/exports", json=payload, headers=bearer(token))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_another_camp_cannot_be_exported(client: TestClient, db: Engine) -> None:
    camp, other = make_camp(db), make_camp(db)
    _family(db, other, name="Canarygul")
    token = make_user(db, "coordinator", [camp], scopes=["pii:export"])
    response = _export(client, token, camp=other, columns=["head_given_name"])
    assert response.status_code == 404
    assert "Canarygul" not in response.text


def test_large_exports_stream_in_chunks(
    client: TestClient, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.exports import service

    camp = make_camp(db)
    for _ in range(7):
        make_household(db, camp)
    token = make_user(db, "coordinator", [camp])
    monkeypatch.setattr(service, "CHUNK_ROWS", 2)
    with client.stream(
        "POST", "/v1/exports", json={"camp": camp, "purpose": PURPOSE}, headers=bearer(token)
    ) as response:
        chunks = list(response.iter_raw())
    text = b"".join(chunks).decode("utf-8-sig")
    assert len(text.strip().splitlines()) == 8
    assert len(chunks) >= 4


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+93700", "'+93700"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("Kabul", "Kabul"),
        (["food", "nfi"], "food;nfi"),
        (None, ""),
        (3, 3),
    ],
)
def test_cells_are_defused(value: object, cell: object) -> None:
    assert safe_cell(value) == cell


def test_an_abandoned_export_releases_its_snapshot(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from api.db import IMMEDIATE
    from api.exports import service
    from api.exports.schemas import HouseholdExport
    from api.principal import Principal, Role

    camp = make_camp(db)
    for _ in range(5):
        make_household(db, camp)
    principal = Principal(uuid.uuid4(), "c", Role.COORDINATOR, frozenset({camp}))
    with Session(db.execution_options(**IMMEDIATE), expire_on_commit=False) as session:
        export = service.start_export(
            engine=db,
            session=session,
            principal=principal,
            request=HouseholdExport(camp=camp, purpose=PURPOSE),
            today=dt.date(2026, 11, 26),
        )
    monkeypatch.setattr(service, "CHUNK_ROWS", 2)
    chunks = export.chunks()
    assert next(chunks)
    export.close()  # what the response's background task does when the client goes away
    chunks.close()
    assert export.rows == 5
    assert export._connection.closed
