"""The campsync command, run as a user runs it: a subprocess with the environment set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.security import hash_token
from api.users.models import ApiToken


def run(data_dir: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAMPSYNC_DATA_DIR": str(data_dir), "CAMPSYNC_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli(db: Engine, tmp_path: Path):  # type: ignore[no-untyped-def]
    url = db.url.render_as_string(hide_password=False)
    return lambda *args: run(tmp_path, url, *args)


def test_create_camp_list_camps_and_user_token(cli, db: Engine) -> None:  # type: ignore[no-untyped-def]
    created = cli(
        "admin",
        "create-camp",
        "--id",
        "torkham-1",
        "--name",
        "Torkham 1",
        "--province",
        "Nangarhar",
    )
    assert created.returncode == 0, created.stderr
    listed = cli("admin", "list-camps")
    assert listed.stdout.splitlines() == ["torkham-1\tTorkham 1\tNangarhar"]
    user = cli(
        "admin", "create-user", "--username", "ana", "--role", "coordinator", "--camp", "torkham-1"
    )
    assert user.returncode == 0, user.stderr
    token = user.stdout.splitlines()[-1]
    assert token.startswith("cs_")
    with Session(db) as session:
        stored = session.exec(select(ApiToken)).one()
    assert stored.token_hash == hash_token(token)
    assert token not in stored.token_hash


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("admin", "create-user", "--username", "x", "--role", "boss", "--camp", "c1"),
            "unknown role",
        ),
        (
            ("admin", "create-user", "--username", "x", "--role", "coordinator", "--camp", "nope"),
            "does not exist",
        ),
        (("admin", "create-camp", "--id", "c1", "--name", "again"), "already exists"),
        (("admin", "create-camp", "--id", "Not A Slug", "--name", "x"), "invalid id"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_nonzero(cli, args, message) -> None:  # type: ignore[no-untyped-def]
    assert cli("admin", "create-camp", "--id", "c1", "--name", "Camp 1").returncode == 0
    result = cli(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_db_upgrade_reports_the_revision(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("database at revision ")
