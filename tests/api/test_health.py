from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.config import Settings
from api.db import make_engine
from api.main import create_app
from tests.factories import bearer, make_user


def test_healthz_answers_without_the_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_tells_only_an_admin_which_database_and_revision(
    client: TestClient, db: Engine
) -> None:
    anonymous = client.get("/readyz")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ready"}
    coordinator = make_user(db, "coordinator", all_camps=True)
    assert client.get("/readyz", headers=bearer(coordinator)).json() == {"status": "ready"}
    assert client.get("/readyz", headers=bearer("not-a-token")).json() == {"status": "ready"}
    body = client.get("/readyz", headers=bearer(make_user(db, "admin"))).json()
    assert body["status"] == "ready"
    assert body["database"] == db.dialect.name
    assert body["revision"] == body["head"]


def test_readyz_says_no_in_time_when_the_database_hangs(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.routes import health

    monkeypatch.setattr(health, "READY_DEADLINE_SECONDS", 0.1)
    monkeypatch.setattr(health, "_check", lambda *_: time.sleep(1))
    started = time.perf_counter()
    response = client.get("/readyz")
    assert time.perf_counter() - started < 0.8
    assert response.status_code == 503
    assert response.json()["error"]["details"]["database"] == "slow"
    assert response.headers["retry-after"] == "1"


def test_docs_can_be_turned_off(tmp_path: Path, db: Engine) -> None:
    settings = Settings(data_dir=tmp_path, log_format="text", docs_enabled=False)
    with TestClient(create_app(settings, engine=db)) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 404
        assert client.get("/healthz").status_code == 200


def test_readyz_is_503_on_an_unmigrated_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    app = create_app(Settings(data_dir=tmp_path, log_format="text"), engine=engine)
    with TestClient(app) as client:
        response = client.get("/readyz")
    engine.dispose()
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["details"] is None  # the revisions are for admins


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    app = create_app(Settings(data_dir=tmp_path, log_format="text"), engine=engine)
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["details"] == {"database": "unreachable"}
