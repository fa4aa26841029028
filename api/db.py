"""Engines, sessions, transactions and migrations, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
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


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine tuned for campsync's access pattern on either database."""
    # JSON columns through orjson: several times faster than the standard library both ways
    # (a pull page reads and a receipt writes thousands of values), and it also writes the
    # UUIDs and datetimes that the standard library refuses.
    kwargs.setdefault("json_serializer", _json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _pool_defaults(kwargs)
        else:  # in memory, one connection per thread (SingletonThreadPool): no pool to size
            for option in ("pool_size", "max_overflow", "pool_timeout"):
                kwargs.pop(option, None)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    _pool_defaults(kwargs)
    return create_engine(url, **kwargs)


def _pool_defaults(kwargs: dict[str, Any]) -> None:
    if "poolclass" in kwargs:
        return
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # A request that cannot get a connection soon is answered 503 (api.handlers), not left
    # holding a thread for SQLAlchemy's default 30 s while the pool's holders wait for one.
    kwargs.setdefault("pool_timeout", 5.0)


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


def engine_from_settings(settings: Settings, **kwargs: Any) -> Engine:
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", settings.db_pool_size)
        kwargs.setdefault("max_overflow", settings.db_max_overflow)
        kwargs.setdefault("pool_timeout", settings.db_pool_timeout_seconds)
    return make_engine(settings.effective_database_url, **kwargs)


WRITER_PATIENCE_SECONDS = 30.0
"""How long a writer waits for its turn on SQLite, as long as SQLite's own busy timeout."""


class SQLiteWriter:
    """The write turn on one SQLite database file, shared by threads and processes.

    Threads of one process queue on a thread lock: a writer waiting in SQLite's busy handler
    sleeps and polls, so under load the lock passes late and unfairly (batch latency p99 in
    seconds), while a thread lock hands it over at once. Processes (``serve --workers N``)
    then take an exclusive ``flock`` on ``<database>.writer``; only one thread per process
    ever waits for it, polling every millisecond, and gives up after ``patience`` seconds
    with SQLite's own "database is locked" error, which callers already answer with 503.
    """

    def __init__(self, database: str, patience: float = WRITER_PATIENCE_SECONDS) -> None:
        self._threads = threading.Lock()
        self._path = f"{database}.writer" if database and database != ":memory:" else None
        self._patience = patience
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            # A forked child gets its own open file: flock locks belong to the open file,
            # and a shared one would let parent and child write at once.
            self._fd = os.open(self._path or "", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def __enter__(self) -> None:
        if not self._threads.acquire(timeout=self._patience):
            raise _locked()
        if self._path is None:
            return
        try:
            fd = self._file()
            deadline = time.monotonic() + self._patience
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise _locked() from None
                    time.sleep(0.001)
                else:
                    return
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            if self._path is not None:
                fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _locked() -> OperationalError:
    error = sqlite3.OperationalError("database is locked")
    return OperationalError("BEGIN IMMEDIATE", None, error)


_sqlite_writers: dict[str, SQLiteWriter] = {}
_sqlite_writers_lock = threading.Lock()


def _writer_lock(engine: Engine) -> SQLiteWriter | None:
    if engine.dialect.name != "sqlite":
        return None
    key = engine.url.render_as_string()
    with _sqlite_writers_lock:
        if key not in _sqlite_writers:
            _sqlite_writers[key] = SQLiteWriter(engine.url.database or "")
        return _sqlite_writers[key]


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the write lock on SQLite; committed on success.

    On SQLite the writer first takes its turn from :class:`SQLiteWriter`.
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
