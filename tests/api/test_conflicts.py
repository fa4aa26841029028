"""Conflicts: list, detail, and every resolution choice, written so that tablets receive it."""

from __future__ import annotations

import uuid

import pytest
from campsync_sync import Entity
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from api.audit.models import AuditLog
from api.registry import store
from api.registry.models import ChangeLog, Person
from tests.factories import bearer, make_camp, make_user
from tests.registry_factories import (
    Tablet,
    delete,
    edit,
    make_conflict,
    make_household,
    make_person,
)


def _max_seq(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.max(ChangeLog.seq))).scalar_one() or 0)


def _state(engine: Engine, entity: Entity, record_id: uuid.UUID):  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return store.load_registry(session, entity, [record_id])[record_id].state


def _resolve(client: TestClient, token: str, conflict: uuid.UUID, **body: object):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/conflicts/{conflict}/resolve", json=body, headers=bearer(token))


@pytest.fixture
def camp(db: Engine) -> str:
    return make_camp(db)


@pytest.fixture
def coordinator(db: Engine, camp: str) -> str:
    return make_user(db, "coordinator", [camp])


def test_list_has_no_values_and_the_detail_has_both_sides(
    client: TestClient, db: Engine, camp: str, coordinator: str
) -> None:
    person, conflict = make_conflict(db, camp, make_household(db, camp))
    listed = client.get("/v1/conflicts", params={"camp": camp}, headers=bearer(coordinator))
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert (item["id"], item["entity_id"], item["field"]) == (
        str(conflict),
        str(person),
        "given_name",
    )
    assert "Mohammad" not in listed.text
    detail = client.get(f"/v1/conflicts/{conflict}", headers=bearer(coordinator)).json()
    assert detail["current"]["value"] == "Mohammad"
    assert detail["current"]["operator"] == "farida"
    assert detail["incoming"]["value"] == "Muhammad"
    assert detail["incoming"]["operator"] == "karim"
    assert detail["current"]["device_id"] != detail["incoming"]["device_id"]
    assert detail["current"]["written_at"] <= detail["incoming"]["written_at"]
    assert detail["record_now"] == {"deleted": False, "given_name": "Muhammad"}
    assert detail["resolution"] is None


def test_list_filters_by_status_entity_and_kind(
    client: TestClient, db: Engine, camp: str, coordinator: str
) -> None:
    household = make_household(db, camp)
    _, first = make_conflict(db, camp, household)
    _, second = make_conflict(db, camp, household, field="family_name")
    assert _resolve(client, coordinator, first, choice="current").status_code == 200

    def ids(**params: object) -> list[str]:
        page = client.get("/v1/conflicts", params=params, headers=bearer(coordinator))
        return [c["id"] for c in page.json()["items"]]

    assert ids() == [str(second)]
    assert ids(status="resolved") == [str(first)]
    assert ids(entity="household") == []
    assert ids(kind="delete") == []
    assert ids(limit=1, status="open") == [str(second)]
    _, third = make_conflict(db, camp, household, field="father_name")
    paged, cursor = [], None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/conflicts", params=params, headers=bearer(coordinator)).json()
        paged += [c["id"] for c in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert paged == [str(second), str(third)]  # oldest first, one page each


def test_resolving_writes_a_fresh_server_clock_after_the_current_cursor(
    client: TestClient, db: Engine, camp: str, coordinator: str
) -> None:
    person, conflict = make_conflict(db, camp, make_household(db, camp))
    before_seq = _max_seq(db)
    before = _state(db, Entity.PERSON, person)
    response = _resolve(client, coordinator, conflict, choice="current")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "resolved"
    assert body["resolution"]["choice"] == "current"
    assert body["resolution"]["commit_seq"] > before_seq
    after = _state(db, Entity.PERSON, person)
    assert after.values["given_name"] == "Mohammad"
    assert after.clocks["given_name"] > before.clocks["given_name"]
    with Session(db) as session:
        logged = (
            session.execute(
                select(ChangeLog).where(ChangeLog.seq > before_seq, ChangeLog.entity_id == person)
            )
            .scalars()
            .one()
        )
    assert logged.kind == "resolve"
    assert logged.changes == {"given_name": "Mohammad"}
    assert logged.actor is not None
    assert logged.actor.startswith("user:")
    assert logged.device_id is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"choice": "incoming"}, "Muhammad"),
        ({"choice": "value", "value": "Mohammed"}, "Mohammed"),
        ({"choice": "value", "value": None}, None),
    ],
)
def test_each_choice_of_a_field_conflict(
    client: TestClient,
    db: Engine,
    camp: str,
    coordinator: str,
    body: dict[str, object],
    expected: str | None,
) -> None:
    person, conflict = make_conflict(db, camp, make_household(db, camp))
    assert _resolve(client, coordinator, conflict, **body).status_code == 200
    with Session(db) as session:
        row = session.get(Person, person)
    assert row is not None
    assert row.given_name == expected


def test_resolving_twice_is_409_already_resolved(
    client: TestClient, db: Engine, camp: str, coordinator: str
) -> None:
    _, conflict = make_conflict(db, camp, make_household(db, camp))
    assert _resolve(client, coordinator, conflict, choice="incoming").status_code == 200
    seq = _max_seq(db)
    again = _resolve(client, coordinator, conflict, choice="current")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_resolved"
    assert _max_seq(db) == seq


def test_an_invalid_value_is_422_without_echoing_it(
    client: TestClient, db: Engine, camp: str, coordinator: str
) -> None:
    _, conflict = make_conflict(
        db,
        camp,
        make_household(db, camp),
        field="date_of_birth",
        current="1990-01-01",
        incoming="1991-02-02",
    )
    response = _resolve(client, coordinator, conflict, choice="value", value="31/12/1990")
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {
        "field": "date_of_birth",
        "reason": "invalid_format",
    }
    assert "31/12/1990" not in response.text
    detail = client.get(f"/v1/conflicts/{conflict}", headers=bearer(coordinator)).json()
    assert detail["status"] == "open"


def test_moving_a_person_only_to_a_household_the_caller_sees(
    client: TestClient, db: Engine, camp: str, coordinator: str
) -> None:
    other = make_camp(db)
    mine, theirs = make_household(db, camp), make_household(db, other)
    _, conflict = make_conflict(
        db,
        camp,
        mine,
        field="household_id",
        current=str(mine),
        incoming=str(make_household(db, camp)),
    )
    refused = _resolve(client, coordinator, conflict, choice="value", value=str(theirs))
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["reason"] == "unknown_household"
    assert _resolve(client, coordinator, conflict, choice="current").status_code == 200


def _delete_conflict(db: Engine, camp: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A tablet edits a person while another, unaware, deletes them: the delete wins."""
    person = make_person(db, camp, make_household(db, camp), given_name="Nazia")
    edit(db, camp, Entity.PERSON, person, Tablet(operator="karim"), seen=True, phone="0700123456")
    effect = delete(db, camp, Entity.PERSON, person, Tablet(operator="farida"))
    [conflict] = effect.conflicts
    assert conflict.kind == "delete"
    return person, conflict.id


def _edit_on_deleted_conflict(db: Engine, camp: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A tablet that missed a delete edits the deleted person: the edit is kept aside."""
    person = make_person(db, camp, make_household(db, camp), given_name="Nazia")
    delete(db, camp, Entity.PERSON, person, Tablet(operator="farida"), seen=True)
    effect = edit(db, camp, Entity.PERSON, person, Tablet(operator="karim"), given_name="Naziya")
    [conflict] = effect.conflicts
    assert conflict.kind == "edit_on_deleted"
    return person, conflict.id


@pytest.mark.parametrize(
    ("make", "choice", "deleted_after", "writes"),
    [
        (_delete_conflict, "current", False, True),
        (_delete_conflict, "incoming", True, False),
        (_edit_on_deleted_conflict, "current", True, False),
        (_edit_on_deleted_conflict, "incoming", False, True),
    ],
)
def test_delete_conflicts_keep_the_record_or_the_delete(
    client: TestClient,
    db: Engine,
    camp: str,
    coordinator: str,
    make,  # type: ignore[no-untyped-def]
    choice: str,
    deleted_after: bool,
    writes: bool,
) -> None:
    person, conflict = make(db, camp)
    assert _state(db, Entity.PERSON, person).is_deleted
    seq = _max_seq(db)
    response = _resolve(client, coordinator, conflict, choice=choice)
    assert response.status_code == 200, response.text
    state = _state(db, Entity.PERSON, person)
    assert state.is_deleted is deleted_after
    assert (_max_seq(db) > seq) is writes
    assert (response.json()["resolution"]["commit_seq"] is not None) is writes
    if make is _edit_on_deleted_conflict and not deleted_after:
        assert state.values["given_name"] == "Naziya"
    if writes:
        with Session(db) as session:
            kinds = (
                session.execute(
                    select(ChangeLog.kind).where(ChangeLog.seq > seq).order_by(ChangeLog.id)
                )
                .scalars()
                .all()
            )
        assert kinds[0] == "restore"


def test_a_delete_conflict_refuses_a_new_value(
    client: TestClient, db: Engine, camp: str, coordinator: str
) -> None:
    _, conflict = _delete_conflict(db, camp)
    response = _resolve(client, coordinator, conflict, choice="value", value="x")
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"kind": "delete"}


def test_integrators_see_redacted_values_and_cannot_resolve(
    client: TestClient, db: Engine, camp: str
) -> None:
    _, conflict = make_conflict(
        db, camp, make_household(db, camp), current="Canarygul", incoming="Canaryjan"
    )
    integrator = make_user(db, "integrator", [camp])
    detail = client.get(f"/v1/conflicts/{conflict}", headers=bearer(integrator))
    assert detail.status_code == 200
    assert "Canary" not in detail.text
    assert set(detail.json()["redacted"]) == {"current.value", "incoming.value", "record_now"}
    refused = _resolve(client, integrator, conflict, choice="current")
    assert refused.status_code == 403


def test_resolution_and_reads_are_audited_without_values(
    client: TestClient, db: Engine, camp: str, coordinator: str
) -> None:
    _, conflict = make_conflict(
        db, camp, make_household(db, camp), current="Auditjan", incoming="Auditgul"
    )
    client.get(f"/v1/conflicts/{conflict}", headers=bearer(coordinator))
    _resolve(client, coordinator, conflict, choice="value", value="Auditkhan")
    with Session(db) as session:
        entries = (
            session.execute(
                select(AuditLog).where(AuditLog.entity_id == str(conflict)).order_by(AuditLog.id)
            )
            .scalars()
            .all()
        )
    assert [e.action for e in entries] == ["conflict.read", "conflict.resolve"]
    assert entries[1].details["choice"] == "value"
    assert entries[1].details["fields"] == ["given_name"]
    assert "Audit" not in str([e.details for e in entries])


def test_another_camps_conflict_is_404(client: TestClient, db: Engine, camp: str) -> None:
    other = make_camp(db)
    _, conflict = make_conflict(db, other, make_household(db, other))
    outsider = make_user(db, "coordinator", [camp])
    assert client.get(f"/v1/conflicts/{conflict}", headers=bearer(outsider)).status_code == 404
    assert _resolve(client, outsider, conflict, choice="current").status_code == 404
    listed = client.get("/v1/conflicts", headers=bearer(outsider)).json()
    assert listed["items"] == []


def test_concurrent_resolutions_apply_exactly_once(db: Engine, camp: str) -> None:
    import threading

    from api.conflicts import resolve as service
    from api.conflicts.schemas import EnterValue
    from api.db import IMMEDIATE
    from api.errors import ConflictError
    from api.principal import Principal, Role

    person, conflict = make_conflict(db, camp, make_household(db, camp))
    principal = Principal(uuid.uuid4(), "c", Role.COORDINATOR, frozenset({camp}))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def resolve(value: str) -> None:
        with Session(db.execution_options(**IMMEDIATE), expire_on_commit=False) as session:
            barrier.wait()
            try:
                service.resolve_conflict(
                    session=session,
                    principal=principal,
                    conflict_id=conflict,
                    data=EnterValue(choice="value", value=value),
                )
                outcomes.append("resolved")
            except ConflictError:
                outcomes.append("refused")

    threads = [threading.Thread(target=resolve, args=(v,)) for v in ("Mohammed", "Muhamad")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "resolved"]
    with Session(db) as session:
        resolves = session.execute(
            select(func.count()).where(ChangeLog.entity_id == person, ChangeLog.kind == "resolve")
        ).scalar_one()
    assert resolves == 1
