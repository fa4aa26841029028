"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when
``CAMPSYNC_TEST_DATABASE_URL`` is set), the app, clients and factories.

Each xdist worker gets its own database. Tests leave no rows behind: the ``db`` fixture
empties every table after each test, which also works when a real uvicorn server wrote
through its own connections.

The protocol and client tests (``tests/sync``, ``tests/client``) must run where only the
client is installed, so the server's stack is imported lazily here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session

    from api.config import Settings

PG_URL = os.environ.get("CAMPSYNC_TEST_DATABASE_URL")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: set CAMPSYNC_SLOW=1")
    skip_pg = pytest.mark.skip(reason="needs CAMPSYNC_TEST_DATABASE_URL (PostgreSQL)")
    for item in items:
        if "slow" in item.keywords and not os.environ.get("CAMPSYNC_SLOW"):
            item.add_marker(skip_slow)
        if "postgres_only" in item.keywords and not PG_URL:
            item.add_marker(skip_pg)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _postgres_database(base_url: str, name_suffix: str) -> str:
    """Create (afresh) a database for this worker next to the one in ``base_url``."""
    from sqlalchemy import make_url, text

    from api.db import make_engine

    url = make_url(base_url)
    name = f"{url.database}_{name_suffix}"
    maintenance = url.set(database="postgres").render_as_string(hide_password=False)
    admin = make_engine(maintenance, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if PG_URL:
        return _postgres_database(PG_URL, _worker())
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'campsync.db'}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    import api.models  # noqa: F401
    from api.db import make_engine, upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def empty_all_tables(engine: Engine) -> None:
    from sqlalchemy import text
    from sqlmodel import SQLModel

    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """The migrated test database, emptied after the test."""
    yield engine
    empty_all_tables(engine)


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    from sqlmodel import Session

    with Session(db, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings(db: Engine, data_dir: Path) -> Settings:
    from api.config import Settings

    return Settings(
        data_dir=data_dir,
        database_url=db.url.render_as_string(hide_password=False),
        log_format="text",
        public_url="http://testserver",
    )


@pytest.fixture
def app(settings: Settings, db: Engine) -> Any:
    from api.main import create_app

    return create_app(settings, engine=db)


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
