"""SQL that differs between SQLite and PostgreSQL, behind one function per idea.

JSON arrays (needs, vulnerabilities, name keys) are JSONB on PostgreSQL, searched with the
containment operator ``@>`` that a GIN index serves and unnested with
``jsonb_array_elements_text``; on SQLite they are JSON text, searched and unnested with
``json_each``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    and_,
    bindparam,
    cast,
    exists,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import Date, String


def contains_all(dialect: str, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """``column`` (a JSON array of strings) holds every one of ``values``.

    On SQLite, ``json_each`` costs a table-valued call per row: a text search for the quoted
    value (as either JSON encoder writes it) discards most rows before it runs.
    """
    if not values:
        return true()
    if dialect == "postgresql":
        return column.op("@>")(bindparam(None, list(values), type_=JSONB))  # type: ignore[no-any-return]
    conditions = []
    for value in values:
        # A cheap text test first (the quoted value appears in the JSON), then the exact one.
        spellings = {json.dumps(value), json.dumps(value, ensure_ascii=False)}
        conditions.append(or_(*(func.instr(column, text) > 0 for text in sorted(spellings))))
        each = func.json_each(column).table_valued("value")
        conditions.append(exists(select(1).select_from(each).where(each.c.value == value)))
    return and_(*conditions)


def array_elements(dialect: str, column: Any) -> FromClause:
    """A table of the elements of a JSON array column, one row each, in column ``value``.

    Join it to the column's table with ``join(elements, true())``: on PostgreSQL a set-returning
    function in FROM sees the tables before it (it is implicitly LATERAL); on SQLite
    ``json_each`` is a table-valued function that does the same.
    """
    if dialect == "postgresql":
        return func.jsonb_array_elements_text(column).table_valued("value").lateral()
    return func.json_each(column).table_valued("value")


def array_not_empty(dialect: str, column: Any) -> ColumnElement[bool]:
    """``column`` (a JSON array) has at least one element: skips rows before unnesting them."""
    length = "jsonb_array_length" if dialect == "postgresql" else "json_array_length"
    return getattr(func, length)(column) > 0  # type: ignore[no-any-return]


def utc_day(dialect: str, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, as ``YYYY-MM-DD`` text."""
    if dialect == "postgresql":
        day = cast(func.timezone("UTC", column), Date)
        return cast(day, String)
    # SQLite stores our UTC timestamps as naive ISO text.
    return func.substr(column, 1, 10)


def utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
