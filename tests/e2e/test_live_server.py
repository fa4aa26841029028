"""The real server over loopback: what users run."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import Engine

from tests.factories import bearer, make_user
from tests.server import LiveServer


def test_live_server_serves_the_api(db: Engine, tmp_path: Path) -> None:
    server = LiveServer(db.url.render_as_string(hide_password=False), tmp_path)
    server.start()
    try:
        token = make_user(db, "admin")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/readyz").json()["status"] == "ready"
            created = client.post(
                "/v1/camps", json={"id": "live-1", "name": "Live"}, headers=bearer(token)
            )
            assert created.status_code == 201
            assert client.get("/v1/camps/live-1", headers=bearer(token)).status_code == 200
            assert client.get("/v1/camps").status_code == 401
    finally:
        server.stop()
    assert '"route": "/v1/camps/{camp_id}"' in server.log()


def test_first_start_on_an_empty_data_dir_creates_the_embedded_database(tmp_path: Path) -> None:
    server = LiveServer(None, tmp_path)
    server.start()
    try:
        assert httpx.get(f"{server.url}/readyz", timeout=10).json() == {"status": "ready"}
    finally:
        server.stop()
    assert (tmp_path / "campsync.db").exists()
