"""Password login: short-lived tokens, one answer for every failure, bounded guessing."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api.users import service
from tests.factories import bearer, make_camp, make_user

PASSWORD = "correct horse battery staple"


@pytest.fixture
def farida(db: Engine) -> str:
    camp = make_camp(db, "login-camp")
    make_user(db, "coordinator", [camp], username="farida")
    with Session(db) as session:
        service.set_password(session=session, username="farida", password=PASSWORD)
    return camp


def test_login_gives_a_short_lived_token_that_works(client: TestClient, farida: str) -> None:
    response = client.post("/v1/auth/login", json={"username": "farida", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert dt.timedelta(hours=11) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=12)
    camps = client.get("/v1/camps", headers=bearer(body["token"])).json()["items"]
    assert [c["id"] for c in camps] == [farida]


def test_unknown_user_and_wrong_password_get_the_same_answer(
    client: TestClient, farida: str
) -> None:
    wrong = client.post("/v1/auth/login", json={"username": "farida", "password": "nope"})
    unknown = client.post("/v1/auth/login", json={"username": "nobody", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_users_without_a_password_cannot_log_in(client: TestClient, db: Engine) -> None:
    make_user(db, "admin", username="tokenonly")
    response = client.post("/v1/auth/login", json={"username": "tokenonly", "password": "x" * 12})
    assert response.status_code == 401


def test_repeated_failures_back_off_for_that_address_only(client: TestClient, farida: str) -> None:
    # The TestClient's address is "testclient"; a second address is a second app client.
    statuses = [
        client.post("/v1/auth/login", json={"username": "farida", "password": "guess"}).status_code
        for _ in range(10)
    ]
    # Five free failures, a sixth that starts the backoff, then 429s that count nothing.
    assert statuses == [401] * 6 + [429] * 4
    blocked = client.post("/v1/auth/login", json={"username": "farida", "password": PASSWORD})
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(blocked.headers["retry-after"]) <= 2
    elsewhere = TestClient(client.app, client=("198.51.100.7", 4000))
    assert (
        elsewhere.post(
            "/v1/auth/login", json={"username": "farida", "password": PASSWORD}
        ).status_code
        == 200
    )


def test_logout_revokes_the_token(client: TestClient, farida: str) -> None:
    token = client.post("/v1/auth/login", json={"username": "farida", "password": PASSWORD}).json()[
        "token"
    ]
    assert client.post("/v1/auth/logout", headers=bearer(token)).status_code == 204
    assert client.get("/v1/camps", headers=bearer(token)).status_code == 401


def test_short_passwords_are_refused(db: Engine) -> None:
    from api.errors import InvalidInput

    make_user(db, "admin", username="shorty")
    with Session(db) as session, pytest.raises(InvalidInput):
        service.set_password(session=session, username="shorty", password="short")
