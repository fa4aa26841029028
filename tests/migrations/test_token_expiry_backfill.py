"""Revision 0005: tokens made without an expiry get created_at + 90 days, on both databases."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, inspect
from sqlmodel import Session

from api.db import downgrade, make_engine, upgrade
from api.users.models import ApiToken
from tests.conftest import PG_URL, _postgres_database

# The tables as revision 0004 left them, spelled out like a revision would: no app models.
USER = sa.table(
    "app_user",
    sa.column("id", sa.Uuid()),
    sa.column("username", sa.String()),
    sa.column("role", sa.String()),
    sa.column("all_camps", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
TOKEN = sa.table(
    "api_token",
    sa.column("id", sa.Uuid()),
    sa.column("user_id", sa.Uuid()),
    sa.column("token_hash", sa.String()),
    sa.column("scopes", sa.JSON()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("expires_at", sa.DateTime(timezone=True)),
)
MADE = dt.datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)
LOGIN_EXPIRY = dt.datetime(2026, 3, 1, 21, 30, tzinfo=dt.UTC)


@pytest.fixture
def fresh_engine(tmp_path: Path) -> Iterator[Engine]:
    if PG_URL:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        url = _postgres_database(PG_URL, f"mig5_{worker}")
    else:
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _expiries(engine: Engine) -> dict[str, dt.datetime]:
    with Session(engine) as session:
        rows = session.execute(sa.select(ApiToken.token_hash, ApiToken.expires_at)).all()
    return dict(rows)  # type: ignore[arg-type]


def _nullable(engine: Engine) -> bool:
    [column] = [c for c in inspect(engine).get_columns("api_token") if c["name"] == "expires_at"]
    return bool(column["nullable"])


def test_tokens_without_expiry_get_created_at_plus_90_days(fresh_engine: Engine) -> None:
    upgrade(fresh_engine, "0004")
    user = uuid.uuid4()
    with fresh_engine.begin() as conn:
        conn.execute(
            USER.insert().values(
                id=user, username="old", role="integrator", all_camps=True, created_at=MADE
            )
        )
        conn.execute(
            TOKEN.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "user_id": user,
                    "token_hash": "forever",
                    "scopes": [],
                    "created_at": MADE,
                    "expires_at": None,
                },
                {
                    "id": uuid.uuid4(),
                    "user_id": user,
                    "token_hash": "login",
                    "scopes": [],
                    "created_at": MADE,
                    "expires_at": LOGIN_EXPIRY,
                },
            ],
        )

    upgrade(fresh_engine, "0005")
    expected = {"forever": MADE + dt.timedelta(days=90), "login": LOGIN_EXPIRY}
    assert _expiries(fresh_engine) == expected
    assert _nullable(fresh_engine) is False

    downgrade(fresh_engine, "0004")
    assert _nullable(fresh_engine) is True
    assert _expiries(fresh_engine) == expected  # the dates stay
