"""Driver-level bulk writes: one executemany per table, values converted once per column.

SQLAlchemy Core spends more time processing each bound value than the database spends
writing the row (reference/perf-limits.md, section 6). Here the SQL text is built once per
table and shape, each column gets one converter chosen from its type, and the rows go to the
driver as plain tuples. The stored forms are those SQLAlchemy itself would write, so the ORM
and Core read them back unchanged.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Date, Table, Uuid
from sqlmodel import Session

from api.types import UTCDateTime

Converter = Callable[[Any], Any]


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _sqlite_uuid(value: uuid.UUID | None) -> str | None:
    return None if value is None else value.hex


def _sqlite_datetime(value: dt.datetime | None) -> str | None:
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
def _statement(
    table: Table, dialect: str, columns: tuple[str, ...], update: tuple[str, ...] | None
) -> tuple[str, tuple[Converter, ...]]:
    converters, marks = zip(*(_converter(table.c[name], dialect) for name in columns), strict=True)
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(marks)})"  # noqa: S608 - names come from the table
    if update is not None:
        if update:
            assignments = ", ".join(f"{name} = excluded.{name}" for name in update)
            sql += f" ON CONFLICT (id) DO UPDATE SET {assignments}"
        else:
            sql += " ON CONFLICT (id) DO NOTHING"
    return sql, converters


def write(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update: Collection[str] | None = None,
) -> None:
    """Insert ``rows`` (all with the keys of the first) in one executemany.

    ``update``: ``None`` for a plain insert; the columns an existing id gets overwritten
    with; empty to leave existing ids alone.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    connection = session.connection()
    dialect = connection.dialect.name
    sql, converters = _statement(
        table, dialect, columns, tuple(update) if update is not None else None
    )
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
            values = tuple(values)
        params.append(values)
    connection.exec_driver_sql(sql, params)
