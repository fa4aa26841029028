"""The audit log: listing for admins, the hash chain, and `campsync admin verify-audit`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select, update
from sqlmodel import Session

from api.audit import service as audit
from api.audit.models import AuditLog
from tests.factories import bearer, make_camp, make_user
from tests.registry_factories import make_household, make_person


def _verify(db: Engine, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CAMPSYNC_DATA_DIR": str(tmp_path),
        "CAMPSYNC_DATABASE_URL": db.url.render_as_string(hide_password=False),
    }
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", "admin", "verify-audit"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _entries(db: Engine) -> list[AuditLog]:
    with Session(db) as session:
        return list(session.execute(select(AuditLog).order_by(AuditLog.id)).scalars())


def _some_history(db: Engine) -> None:
    for _ in range(3):
        make_camp(db)  # each camp creation is an audited change


def test_an_intact_chain_verifies_and_prints_its_head(db: Engine, tmp_path: Path) -> None:
    _some_history(db)
    result = _verify(db, tmp_path)
    assert result.returncode == 0, result.stderr
    head = _entries(db)[-1]
    assert result.stdout.splitlines() == [
        f"audit log intact: 3 entries; head entry {head.id}",
        head.hash,
    ]


def test_an_edited_entry_is_named(db: Engine, tmp_path: Path) -> None:
    _some_history(db)
    middle = _entries(db)[1]
    with Session(db) as session:
        session.execute(
            update(AuditLog).where(AuditLog.id == middle.id).values(details={"camp": "forged"})
        )
        session.commit()
    result = _verify(db, tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"error: audit log broken at entry {middle.id}: its content does not match its hash: "
        "it was edited"
    )


def test_a_deleted_middle_entry_is_detected_at_the_next_one(db: Engine, tmp_path: Path) -> None:
    _some_history(db)
    first, middle, last = _entries(db)
    with Session(db) as session:
        session.execute(delete(AuditLog).where(AuditLog.id == middle.id))
        session.commit()
    result = _verify(db, tmp_path)
    assert result.returncode == 1
    assert f"broken at entry {last.id}: does not link to entry {first.id}" in result.stderr


def test_a_rewritten_entry_with_a_recomputed_hash_breaks_the_next_link(db: Engine) -> None:
    _some_history(db)
    _, middle, last = _entries(db)
    with Session(db, expire_on_commit=False) as session:
        row = session.get(AuditLog, middle.id)
        assert row is not None
        row.details = {"camp": "forged"}
        row.hash = audit.entry_hash(row.prev_hash, row)
        session.commit()
    with Session(db) as session:
        report = audit.verify(session)
    assert report.first_bad_id == last.id
    assert report.head_id == middle.id


def test_details_never_take_personal_fields(db: Engine) -> None:
    with Session(db) as session, pytest.raises(ValueError, match="personal"):
        audit.append(
            session,
            actor_type="user",
            actor_id="user:x",
            action="person.read",
            details={"changes": {"given_name": "Mohammad"}},
        )


def test_admins_list_the_log_newest_first_with_filters(client: TestClient, db: Engine) -> None:
    camp = make_camp(db)
    person = make_person(db, camp, make_household(db, camp), given_name="Laila")
    coordinator = make_user(db, "coordinator", [camp])
    client.get(f"/v1/persons/{person}", headers=bearer(coordinator))
    admin = make_user(db, "admin")
    listed = client.get("/v1/audit", params={"limit": 2}, headers=bearer(admin))
    assert listed.status_code == 200
    page = listed.json()
    ids = [e["id"] for e in page["items"]]
    assert ids == sorted(ids, reverse=True)
    rest = client.get(
        "/v1/audit", params={"cursor": page["next_cursor"]}, headers=bearer(admin)
    ).json()
    assert max(e["id"] for e in rest["items"]) < min(ids)
    about = client.get("/v1/audit", params={"entity_id": str(person)}, headers=bearer(admin))
    [read] = about.json()["items"]
    assert read["action"] == "person.read"
    assert read["camp_id"] == camp
    by_action = client.get("/v1/audit", params={"action": "camp.create"}, headers=bearer(admin))
    assert [e["camp_id"] for e in by_action.json()["items"]] == [camp]
    assert "Laila" not in listed.text + about.text


def test_only_admins_read_the_log(client: TestClient, db: Engine) -> None:
    camp = make_camp(db)
    for role, scopes in (("coordinator", []), ("integrator", ["pii:read", "pii:export"])):
        token = make_user(db, role, [camp], scopes=scopes)
        response = client.get("/v1/audit", headers=bearer(token))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"


def test_the_chain_holds_across_many_audited_reads(client: TestClient, db: Engine) -> None:
    camp = make_camp(db)
    household = make_household(db, camp)
    token = make_user(db, "coordinator", [camp])
    for _ in range(25):
        assert client.get(f"/v1/households/{household}", headers=bearer(token)).status_code == 200
    with Session(db) as session:
        report = audit.verify(session)
    assert report.ok
    assert report.entries >= 27
