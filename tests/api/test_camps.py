from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.factories import bearer, make_camp, make_user


def test_anonymous_is_401_with_error_body(client: TestClient) -> None:
    response = client.get("/v1/camps")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


def test_bad_token_is_401(client: TestClient, db: Engine) -> None:
    response = client.get("/v1/camps", headers=bearer("cs_not-a-real-token"))
    assert response.status_code == 401


def test_admin_creates_and_lists_camps(client: TestClient, db: Engine) -> None:
    token = make_user(db, "admin")
    created = client.post(
        "/v1/camps",
        json={"id": "torkham-1", "name": "Torkham 1", "province": "Nangarhar"},
        headers=bearer(token),
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "torkham-1"
    listed = client.get("/v1/camps", headers=bearer(token)).json()
    assert [c["id"] for c in listed["items"]] == ["torkham-1"]
    assert listed["next_cursor"] is None


def test_duplicate_camp_is_409(client: TestClient, db: Engine) -> None:
    token = make_user(db, "admin")
    make_camp(db, "dup-camp")
    response = client.post("/v1/camps", json={"id": "dup-camp", "name": "x"}, headers=bearer(token))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_exists"


def test_only_admins_create_camps(client: TestClient, db: Engine) -> None:
    camp = make_camp(db)
    for role in ("coordinator", "integrator"):
        token = make_user(db, role, [camp])
        response = client.post(
            "/v1/camps", json={"id": "new-camp", "name": "x"}, headers=bearer(token)
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"


def test_coordinator_sees_only_their_camps(client: TestClient, db: Engine) -> None:
    mine, other = make_camp(db), make_camp(db)
    token = make_user(db, "coordinator", [mine])
    listed = client.get("/v1/camps", headers=bearer(token)).json()["items"]
    assert [c["id"] for c in listed] == [mine]
    assert client.get(f"/v1/camps/{mine}", headers=bearer(token)).status_code == 200
    hidden = client.get(f"/v1/camps/{other}", headers=bearer(token))
    assert hidden.status_code == 404
    assert other not in hidden.text
    assert client.get("/v1/camps/does-not-exist", headers=bearer(token)).status_code == 404


def test_revoked_and_expired_tokens_are_refused(client: TestClient, db: Engine) -> None:
    import datetime as dt

    from sqlmodel import Session, select

    from api.users.models import ApiToken

    token = make_user(db, "admin")
    assert client.get("/v1/camps", headers=bearer(token)).status_code == 200
    with Session(db) as s:
        row = s.exec(select(ApiToken)).one()
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        s.add(row)
        s.commit()
    assert client.get("/v1/camps", headers=bearer(token)).status_code == 401
