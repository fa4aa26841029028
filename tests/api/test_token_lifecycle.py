"""Every user token ends: API tokens expire, admins revoke them, disable and enable users.

The command line runs as a user runs it where its output matters (a subprocess, as in
``test_cli.py``); elsewhere in process through typer's runner, which is many times faster.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlmodel import Session
from typer.testing import CliRunner

from api.audit.models import AuditLog
from api.cli import app as cli_app
from api.config import get_settings
from api.errors import InvalidInput
from api.security import hash_token
from api.users import service
from api.users.models import ApiToken, AppUser
from tests.factories import bearer, make_camp, make_user

PASSWORD = "correct horse battery staple"
NOW_SLACK = dt.timedelta(minutes=1)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def cli(db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``campsync`` in process: returns (exit code, stdout lines, stderr lines)."""
    monkeypatch.setenv("CAMPSYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAMPSYNC_DATABASE_URL", db.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, list[str], list[str]]:
        result = runner.invoke(cli_app, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        return result.exit_code, result.stdout.splitlines(), result.stderr.splitlines()

    yield invoke
    get_settings.cache_clear()


def _expires_at(db: Engine, token: str) -> dt.datetime:
    with Session(db) as session:
        row = session.execute(
            select(ApiToken).where(ApiToken.token_hash == hash_token(token))
        ).scalar_one()
    return row.expires_at


def _expire(db: Engine, token: str) -> None:
    with Session(db) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(token))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        session.commit()


def _works(client: TestClient, token: str) -> int:
    return client.get("/v1/camps", headers=bearer(token)).status_code


def _audit(db: Engine, action: str) -> list[AuditLog]:
    with Session(db) as session:
        return list(
            session.execute(
                select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
            ).scalars()
        )


def _user_id(db: Engine, username: str) -> str:
    with Session(db) as session:
        user = session.execute(select(AppUser).where(AppUser.username == username)).scalar_one()
    return str(user.id)


def _login(client: TestClient, username: str) -> int:
    return client.post(
        "/v1/auth/login", json={"username": username, "password": PASSWORD}
    ).status_code


def _another_token(db: Engine, username: str) -> str:
    with Session(db) as session:
        return service.create_token(session=session, username=username).token


def _with_password(db: Engine, username: str) -> None:
    with Session(db) as session:
        service.set_password(session=session, username=username, password=PASSWORD)


# --------------------------------------------------------------------------- expiry


def test_create_user_prints_the_expiry_then_the_token_alone(
    client: TestClient, db: Engine, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CAMPSYNC_DATA_DIR": str(tmp_path),
        "CAMPSYNC_DATABASE_URL": db.url.render_as_string(hide_password=False),
    }
    args = [
        "admin",
        "create-user",
        "--username",
        "bot",
        "--role",
        "admin",
        "--token-ttl-days",
        "30",
    ]
    result = subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    *_, announcement, token = result.stdout.splitlines()
    assert token.startswith("cs_")
    assert " " not in token
    expires_at = _expires_at(db, token)
    assert abs(expires_at - (dt.datetime.now(dt.UTC) + dt.timedelta(days=30))) < NOW_SLACK
    assert f"valid until {expires_at:%Y-%m-%d %H:%M} UTC" in announcement
    assert _works(client, token) == 200
    _expire(db, token)
    assert _works(client, token) == 401


def test_api_tokens_last_90_days_by_default_and_at_most_a_year(cli: Any, db: Engine) -> None:
    code, out, _ = cli("admin", "create-user", "--username", "dflt", "--role", "admin")
    assert code == 0
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    assert abs(_expires_at(db, out[-1]) - expected) < NOW_SLACK
    for days in ("0", "367"):
        code, out, _ = cli(
            "admin",
            "create-user",
            "--username",
            f"u{days}",
            "--role",
            "admin",
            "--token-ttl-days",
            days,
        )
        assert code != 0
        assert not any(line.startswith("cs_") for line in out)
    with Session(db) as session, pytest.raises(InvalidInput):
        service.create_user(
            session=session, username="forever", role="admin", token_ttl=dt.timedelta(days=367)
        )


def test_every_token_of_a_user_has_an_expiry(db: Engine) -> None:
    make_user(db, "admin")
    with Session(db) as session:
        assert all(t.expires_at is not None for t in session.execute(select(ApiToken)).scalars())


def test_create_token_rotates_an_integrators_token(
    cli: Any, client: TestClient, db: Engine
) -> None:
    camp = make_camp(db)
    old = make_user(db, "integrator", [camp], username="partner")
    code, out, _ = cli(
        "admin", "create-token", "--username", "partner", "--ttl-days", "7", "--scope", "pii:read"
    )
    assert code == 0
    new = out[-1]
    assert "valid until" in out[-2]
    assert abs(_expires_at(db, new) - (dt.datetime.now(dt.UTC) + dt.timedelta(days=7))) < NOW_SLACK
    assert _works(client, new) == _works(client, old) == 200
    code, out, _ = cli("admin", "revoke-tokens", "partner")
    assert (code, out) == (0, ["revoked 2 tokens of partner"])
    assert _works(client, new) == _works(client, old) == 401
    [entry] = _audit(db, "user.create_token")
    assert entry.entity_id == _user_id(db, "partner")
    assert new not in json.dumps(entry.details)


# --------------------------------------------------------------------------- command line


def test_revoke_tokens_ends_every_token_of_one_user_only(
    cli: Any, client: TestClient, db: Engine
) -> None:
    first = make_user(db, "admin", username="ana")
    second = _another_token(db, "ana")
    other = make_user(db, "admin", username="bo")
    code, out, _ = cli("admin", "revoke-tokens", "ana")
    assert (code, out) == (0, ["revoked 2 tokens of ana"])
    assert _works(client, first) == _works(client, second) == 401
    assert _works(client, other) == 200
    assert cli("admin", "revoke-tokens", "ana")[1] == ["revoked 0 tokens of ana"]
    entries = _audit(db, "user.revoke_tokens")
    assert [(e.actor_id, e.entity_id, e.details) for e in entries] == [
        ("cli", _user_id(db, "ana"), {"revoked": 2}),
        ("cli", _user_id(db, "ana"), {"revoked": 0}),
    ]


def test_disable_user_stops_tokens_and_login_at_once_and_enable_restores(
    cli: Any, client: TestClient, db: Engine
) -> None:
    token = make_user(db, "admin", username="cara")
    _with_password(db, "cara")
    assert _works(client, token) == 200
    code, out, _ = cli("admin", "disable-user", "cara")
    assert code == 0
    assert out[0].startswith("user cara is disabled")
    assert _works(client, token) == 401
    assert _login(client, "cara") == 401
    code, _, err = cli("admin", "create-token", "--username", "cara")
    assert code == 1
    assert err == ["error: user 'cara' is disabled; enable them first"]
    assert cli("admin", "enable-user", "cara")[:2] == (0, ["user cara is enabled"])
    assert _works(client, token) == 200
    assert _login(client, "cara") == 200
    assert [e.details for e in _audit(db, "user.disable")] == [{"changed": True}]
    assert [e.details for e in _audit(db, "user.enable")] == [{"changed": True}]


def test_list_users_shows_roles_camps_status_and_live_tokens_but_no_secret(
    cli: Any, db: Engine
) -> None:
    camp_a, camp_b = make_camp(db, "list-a"), make_camp(db, "list-b")
    admin = make_user(db, "admin", username="root")
    coordinator = make_user(db, "coordinator", [camp_b, camp_a], username="dina")
    _expire(db, coordinator)
    make_user(db, "integrator", all_camps=True, username="feed")
    assert cli("admin", "disable-user", "feed")[0] == 0
    code, out, _ = cli("admin", "list-users")
    assert code == 0
    assert out == [
        "root\tadmin\tall\tenabled\t1 live token",
        "dina\tcoordinator\tlist-a,list-b\tenabled\t0 live tokens",
        "feed\tintegrator\tall\tdisabled\t1 live token",
    ]
    assert admin not in "\n".join(out)


@pytest.mark.parametrize("command", ["revoke-tokens", "disable-user", "enable-user"])
def test_an_unknown_user_is_one_line_on_stderr(cli: Any, command: str) -> None:
    code, out, err = cli("admin", command, "nobody")
    assert (code, out, err) == (1, [], ["error: user 'nobody' does not exist"])


# --------------------------------------------------------------------------- routes


@pytest.fixture
def admin(db: Engine) -> str:
    return make_user(db, "admin", username="boss")


def test_admins_list_users_a_page_at_a_time(client: TestClient, db: Engine, admin: str) -> None:
    camp = make_camp(db)
    for name in ("u1", "u2", "u3"):
        make_user(db, "coordinator", [camp], username=name)
    first = client.get("/v1/users", params={"limit": 2}, headers=bearer(admin))
    assert first.status_code == 200, first.text
    body = first.json()
    assert [u["username"] for u in body["items"]] == ["boss", "u1"]
    rest = client.get(
        "/v1/users", params={"limit": 2, "cursor": body["next_cursor"]}, headers=bearer(admin)
    ).json()
    assert [u["username"] for u in rest["items"]] == ["u2", "u3"]
    assert rest["next_cursor"] is None
    u1 = body["items"][1]
    assert u1["camps"] == [camp]
    assert u1["all_camps"] is False
    assert (u1["live_tokens"], u1["disabled_at"], u1["has_password"]) == (1, None, False)
    assert not {"password_hash", "token", "token_hash"} & set(u1)
    forged = client.get("/v1/users", params={"cursor": "AAAA"}, headers=bearer(admin))
    assert forged.status_code == 400


def test_revoke_tokens_route(client: TestClient, db: Engine, admin: str) -> None:
    target = make_user(db, "admin", username="tess")
    second = _another_token(db, "tess")
    response = client.post("/v1/users/tess/revoke-tokens", headers=bearer(admin))
    assert (response.status_code, response.json()) == (200, {"revoked": 2})
    assert _works(client, target) == _works(client, second) == 401
    assert _works(client, admin) == 200
    [entry] = _audit(db, "user.revoke_tokens")
    assert (entry.actor_id, entry.entity_id) == (
        f"user:{_user_id(db, 'boss')}",
        _user_id(db, "tess"),
    )


def test_disable_and_enable_routes(client: TestClient, db: Engine, admin: str) -> None:
    target = make_user(db, "coordinator", [make_camp(db)], username="vic")
    _with_password(db, "vic")
    disabled = client.post("/v1/users/vic/disable", headers=bearer(admin))
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled_at"] is not None
    assert disabled.json()["live_tokens"] == 1  # not revoked: enabling restores it
    assert _works(client, target) == 401
    assert _login(client, "vic") == 401
    again = client.post("/v1/users/vic/disable", headers=bearer(admin))
    assert again.json()["disabled_at"] == disabled.json()["disabled_at"]
    enabled = client.post("/v1/users/vic/enable", headers=bearer(admin))
    assert enabled.status_code == 200
    assert enabled.json()["disabled_at"] is None
    assert _works(client, target) == 200
    assert _login(client, "vic") == 200
    actor = f"user:{_user_id(db, 'boss')}"
    assert [(e.actor_id, e.details) for e in _audit(db, "user.disable")] == [
        (actor, {"changed": True}),
        (actor, {"changed": False}),
    ]
    assert [(e.actor_id, e.entity_id) for e in _audit(db, "user.enable")] == [
        (actor, _user_id(db, "vic"))
    ]


def test_an_admin_cannot_disable_themselves(client: TestClient, db: Engine, admin: str) -> None:
    response = client.post("/v1/users/boss/disable", headers=bearer(admin))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "yourself" in response.json()["error"]["message"]
    assert _works(client, admin) == 200
    assert _audit(db, "user.disable") == []


def test_the_routes_are_for_admins_only(client: TestClient, db: Engine, admin: str) -> None:
    coordinator = make_user(db, "coordinator", [make_camp(db)], username="cory")
    calls = [
        ("GET", "/v1/users"),
        ("POST", "/v1/users/boss/revoke-tokens"),
        ("POST", "/v1/users/boss/disable"),
        ("POST", "/v1/users/boss/enable"),
    ]
    for method, url in calls:
        assert client.request(method, url, headers=bearer(coordinator)).status_code == 403
        assert client.request(method, url).status_code == 401
    assert _works(client, admin) == 200


@pytest.mark.parametrize(
    ("username", "status"),
    [
        ("nobody", 404),
        ("a" * 64, 404),
        ("a" * 65, 422),
        ("bad name", 422),
        ("-dash", 422),
        ("..", 404),  # normalised away by the client: no route
        ("ali%00", 422),
        ("ünïcode", 422),
    ],
)
def test_odd_usernames_are_refused_not_crashed_on(
    client: TestClient, admin: str, username: str, status: int
) -> None:
    response = client.post(f"/v1/users/{username}/disable", headers=bearer(admin))
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}


def test_create_user_accepts_exactly_the_route_pattern(db: Engine) -> None:
    with Session(db) as session:
        for bad in ("-dash", ".dot", "ünïcode", "a" * 65, "", "a b"):
            with pytest.raises(InvalidInput):
                service.create_user(session=session, username=bad, role="admin")
        user, _ = service.create_user(session=session, username="a.b-c_9", role="admin")
        assert user.username == "a.b-c_9"
