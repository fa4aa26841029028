"""Engines, sessions, transactions and migrations, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlmodel import Session

from api.config import Settings

_API_DIR = Path(__file__).resolve().parent
IMMEDIATE = {"campsync_immediate": True}
"""Execution option: open the transaction with ``BEGIN IMMEDIATE`` on SQLite (writers)."""


def migrations_dir() -> Path:
    """Alembic's script directory: inside the wheel, or beside ``api/`` in a checkout."""
    for candidate in (_API_DIR / "migrations", _API_DIR.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError("the migrations directory is missing from this installation")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine tuned for campsync's access pattern on either database."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Take transaction control from the sqlite3 module, so BEGIN is ours to choose.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged batch must survive a power cut (NORMAL may lose the last
        # commits of a WAL database).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later needs to
        # write can fail with "database is locked" instead of waiting its turn.
        immediate = conn.get_execution_options().get("campsync_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def engine_from_settings(settings: Settings) -> Engine:
    return make_engine(settings.effective_database_url)


_sqlite_writers: dict[str, threading.Lock] = {}
_sqlite_writers_lock = threading.Lock()


def _writer_lock(engine: Engine) -> threading.Lock | None:
    if engine.dialect.name != "sqlite":
        return None
    key = engine.url.render_as_string()
    with _sqlite_writers_lock:
        return _sqlite_writers.setdefault(key, threading.Lock())


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the write lock on SQLite; committed on success.

    On SQLite the threads of one process also queue on a lock of their own first: a writer
    waiting in SQLite's busy handler sleeps and polls, so under load the lock passes late
    and unfairly (batch latency p99 in seconds); a thread lock hands it over at once.
    """
    lock = _writer_lock(engine)
    with lock if lock is not None else nullcontext():
        with Session(engine.execution_options(**IMMEDIATE), expire_on_commit=False) as session:
            with session.begin():
                yield session


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads (and writes that cannot contend); committed on success."""
    with Session(engine, expire_on_commit=False) as session:
        with session.begin():
            yield session


def include_on(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's ``include_object`` for comparisons on one kind of database.

    What the models create only on another kind (``Index(...).ddl_if(dialect=...)``) is
    left out.
    """

    def include(obj: Any, _name: str | None, _type: str, _reflected: bool, _other: Any) -> bool:
        condition = getattr(obj, "_ddl_if", None)
        if condition is None or condition.dialect is None:
            return True
        allowed = condition.dialect
        return dialect == allowed if isinstance(allowed, str) else dialect in allowed

    return include


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` over the given engine's database."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the repository always has revisions
        raise RuntimeError("no migration revisions found")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
