"""Models and migrations agree, and every revision upgrades and downgrades, on both databases."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

import api.models  # noqa: F401
from api.db import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    include_on,
    make_engine,
    upgrade,
)
from tests.conftest import PG_URL, _postgres_database


@pytest.fixture
def fresh_engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the kind under test, separate from the shared test database."""
    if PG_URL:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        url = _postgres_database(PG_URL, f"mig_{worker}")
    else:
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "include_object": include_on(conn.dialect.name)},
        )
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_upgrade_downgrade_upgrade_round_trip(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    assert current_revision(fresh_engine) == head_revision()
    tables = set(inspect(fresh_engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    downgrade(fresh_engine, "base")
    assert current_revision(fresh_engine) is None
    assert set(inspect(fresh_engine).get_table_names()) <= {"alembic_version"}
    upgrade(fresh_engine)
    assert current_revision(fresh_engine) == head_revision()


def test_each_revision_steps_down_and_up(fresh_engine: Engine) -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        upgrade(fresh_engine, revision)
        assert current_revision(fresh_engine) == revision
    for _ in revisions:
        downgrade(fresh_engine, "-1")
    assert current_revision(fresh_engine) is None


def test_revision_files_are_date_prefixed_and_never_import_the_app() -> None:
    versions = Path(__file__).resolve().parents[2] / "migrations" / "versions"
    files = sorted(versions.glob("*.py"))
    assert files
    for path in files:
        assert re.match(r"\d{4}-\d{2}-\d{2}_\w+\.py$", path.name), path.name
        source = path.read_text()
        assert "import api" not in source, path.name
        assert "from api" not in source, path.name
        assert "sqlmodel" not in source, path.name
