"""Driver-level bulk writes: one statement per table and batch.

SQLAlchemy Core spends more time processing each bound value than the database spends
writing the row (reference/perf-limits.md, section 6). On PostgreSQL the rows travel as one
JSON document expanded by ``jsonb_to_recordset`` (the fastest measured upsert, about 4 µs of
client CPU a row); on SQLite, one multi-row ``INSERT ... VALUES`` per batch (as many rows as
the driver's variable limit allows), each column converted by one function chosen from its
type. SQL texts are built once per table and shape. The stored
forms are those SQLAlchemy itself would write, so the ORM
and Core read them back unchanged.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import operator
import sqlite3
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Date, LargeBinary, Table, Uuid
from sqlalchemy.dialects.postgresql import psycopg
from sqlmodel import Session

from api.types import UTCDateTime

Converter = Callable[[Any], Any]
_POSTGRESQL = psycopg.dialect()  # type: ignore[no-untyped-call]


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _sqlite_uuid(value: uuid.UUID | None) -> str | None:
    return None if value is None else value.hex


@functools.lru_cache(maxsize=256)
def _sqlite_datetime(value: dt.datetime | None) -> str | None:
    # Cached: a batch stamps every row it writes with the same few instants.
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_date(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _same(value: Any) -> Any:
    return value


def _converter(column: Any, dialect: str) -> tuple[Converter, str]:
    """How to pass a column's value to the driver, and its SQL placeholder."""
    kind = column.type
    mark = "?" if dialect == "sqlite" else "%s"
    if isinstance(kind, JSON):
        return _json_text, mark if dialect == "sqlite" else "%s::jsonb"
    if dialect != "sqlite":
        return _same, mark
    if isinstance(kind, Uuid):
        return _sqlite_uuid, mark
    if isinstance(kind, UTCDateTime):
        return _sqlite_datetime, mark
    if isinstance(kind, Date):
        return _sqlite_date, mark
    if isinstance(kind, Boolean):
        return _sqlite_bool, mark
    return _same, mark


@functools.cache
def _converters(table: Table, dialect: str, columns: tuple[str, ...]) -> tuple[Converter, ...]:
    return tuple(_converter(table.c[name], dialect)[0] for name in columns)


@functools.lru_cache(maxsize=256)
def _values_statement(
    table: Table,
    dialect: str,
    columns: tuple[str, ...],
    update: tuple[str, ...] | None,
    count: int,
) -> str:
    """``INSERT ... VALUES`` with ``count`` rows of placeholders."""
    marks = ", ".join(_converter(table.c[name], dialect)[1] for name in columns)
    values = ", ".join([f"({marks})"] * count)
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {values}"  # noqa: S608 - names come from the table
    return sql + _on_conflict(update)


@functools.cache
def _recordset_statement(
    table: Table, columns: tuple[str, ...], update: tuple[str, ...] | None
) -> str | None:
    """One INSERT ... SELECT over ``jsonb_to_recordset``; ``None`` if a column cannot ride JSON."""
    dialect = _POSTGRESQL
    types = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, LargeBinary):
            return None
        types.append(f"{name} {kind.compile(dialect=dialect)}")
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {table.name} ({names}) SELECT {names} "  # noqa: S608 - names from the table
        f"FROM jsonb_to_recordset(%s::jsonb) AS x({', '.join(types)})"
    )
    return sql + _on_conflict(update)


def _on_conflict(update: tuple[str, ...] | None) -> str:
    if update is None:
        return ""
    if not update:
        return " ON CONFLICT (id) DO NOTHING"
    return " ON CONFLICT (id) DO UPDATE SET " + ", ".join(
        f"{name} = excluded.{name}" for name in update
    )


def write(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update: Collection[str] | None = None,
) -> None:
    """Insert ``rows`` (all with the keys of the first) with one statement or executemany.

    ``update``: ``None`` for a plain insert; the columns an existing id gets overwritten
    with; empty to leave existing ids alone.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    connection = session.connection()
    dialect = connection.dialect.name
    conflict = tuple(update) if update is not None else None
    if dialect == "postgresql":
        recordset = _recordset_statement(table, columns, conflict)
        if recordset is not None:
            # The whole batch as one JSON parameter: serialised in C, one round trip, and
            # the server parses it faster than it binds thousands of parameters.
            connection.exec_driver_sql(recordset, (orjson.dumps(rows).decode(),))
            return
    converters = _converters(table, dialect, columns)
    getter = operator.itemgetter(*columns)
    converting = [(i, convert) for i, convert in enumerate(converters) if convert is not _same]
    params: list[Any] = []
    for row in rows:
        values = getter(row)
        if len(columns) == 1:
            values = (values,)
        if converting:
            values = list(values)
            for i, convert in converting:
                values[i] = convert(values[i])
        params.append(values)
    if dialect != "sqlite":
        statement = _values_statement(table, dialect, columns, conflict, 1)
        connection.exec_driver_sql(statement, [tuple(values) for values in params])
        return
    # Many rows per statement: sqlite3 lets go of the GIL at every step of an executemany,
    # and with other requests running, each step then waits its turn to get it back.
    driver = connection.connection.dbapi_connection
    assert isinstance(driver, sqlite3.Connection)  # noqa: S101 - the sqlite dialect's driver
    per = max(1, driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(columns))
    for start in range(0, len(params), per):
        chunk = params[start : start + per]
        sql = _values_statement(table, dialect, columns, conflict, len(chunk))
        connection.exec_driver_sql(sql, tuple(itertools.chain.from_iterable(chunk)))
