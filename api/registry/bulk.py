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


def unchanged(value: Any) -> Any:
    """The converter of a column whose values the driver takes as they are."""
    return value


def _converter(column: Any, dialect: str) -> tuple[Converter, str]:
    """How to pass a column's value to the driver, and its SQL placeholder."""
    kind = column.type
    mark = "?" if dialect == "sqlite" else "%s"
    if isinstance(kind, JSON):
        return _json_text, mark if dialect == "sqlite" else "%s::jsonb"
    if dialect != "sqlite":
        return unchanged, mark
    if isinstance(kind, Uuid):
        return _sqlite_uuid, mark
    if isinstance(kind, UTCDateTime):
        return _sqlite_datetime, mark
    if isinstance(kind, Date):
        return _sqlite_date, mark
    if isinstance(kind, Boolean):
        return _sqlite_bool, mark
    return unchanged, mark


@functools.cache
def converters(table: Table, dialect: str, columns: tuple[str, ...]) -> tuple[Converter, ...]:
    """For each column, the function that turns its values into what the driver is given.

    JSON becomes text; on SQLite, values take the forms SQLAlchemy stores (UUID hex digits,
    UTC datetime text).
    """
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


@functools.lru_cache(maxsize=512)
def _recordset_statement(
    table: Table,
    columns: tuple[str, ...],
    update: tuple[str, ...] | None,
    shared: frozenset[str] = frozenset(),
) -> str | None:
    """One INSERT ... SELECT over ``jsonb_to_recordset``; ``None`` if a column cannot ride JSON.

    A ``shared`` column takes one parameter for every row (placed before the document, in
    column order) instead of a key in each row's JSON object.
    """
    dialect = _POSTGRESQL
    picks, types = [], []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, LargeBinary):
            return None
        sql_type = kind.compile(dialect=dialect)
        if name in shared:
            # Text is cast unbounded: a cast to VARCHAR(n) would cut a long value, where
            # the insert refuses it.
            bounded = sql_type.startswith(("VARCHAR", "CHAR"))
            picks.append(f"CAST(%s AS {'TEXT' if bounded else sql_type})")
        else:
            picks.append(name)
            types.append(f"{name} {sql_type}")
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(picks)} "  # noqa: S608 - names from the table
        f"FROM jsonb_to_recordset(%s::jsonb) AS x({', '.join(types)})"
    )
    return sql + _on_conflict(update)


def _shared(rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...]) -> frozenset[str]:
    """The columns with one value in every row (a batch's camp, device, instant, empty fields)."""
    if len(rows) < 2:
        return frozenset()
    first, rest = rows[0], rows[1:]
    shared = []
    for name in columns:
        value = first[name]
        kind = type(value)
        # The type too: True == 1, and 1 == 1.0, must not pass for one value.
        if all(type(v := row[name]) is kind and v == value for row in rest):
            shared.append(name)
    return frozenset(shared) if len(shared) < len(columns) else frozenset()


def _shared_value(table: Table, name: str, value: Any) -> Any:
    return _json_text(value) if isinstance(table.c[name].type, JSON) else value


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

    Values are plain: str, int, float, bool, UUID, date, aware datetime, None, and what
    JSON columns hold. ``update``: ``None`` for a plain insert; the columns an existing id
    gets overwritten with; empty to leave existing ids alone.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    connection = session.connection()
    dialect = connection.dialect.name
    conflict = tuple(update) if update is not None else None
    if dialect == "postgresql":
        shared = _shared(rows, columns)
        recordset = _recordset_statement(table, columns, conflict, shared)
        if recordset is not None:
            # The whole batch as one JSON parameter: serialised in C, one round trip, and
            # the server parses it faster than it binds thousands of parameters. Values
            # every row shares travel once, outside it: for a batch of registrations the
            # server then parses a third less JSON (measured: 48 -> 34 us a person row).
            args: list[Any] = [_shared_value(table, n, rows[0][n]) for n in columns if n in shared]
            if shared:
                varying = tuple(n for n in columns if n not in shared)
                rows = [{n: row[n] for n in varying} for row in rows]
            args.append(orjson.dumps(rows).decode())
            connection.exec_driver_sql(recordset, tuple(args))
            return
    convert_columns = converters(table, dialect, columns)
    getter = operator.itemgetter(*columns)
    converting = [
        (i, convert) for i, convert in enumerate(convert_columns) if convert is not unchanged
    ]
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
