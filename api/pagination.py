"""Cursor pagination shared by every list: opaque cursors over a stable sort key.

A list is ordered by a unique key (an id, or a timestamp then an id) and a page ends with the
key of its last item. The cursor is that key, tagged with the list it belongs to and encoded as
URL-safe base64 JSON: the server keeps no state, and filters are applied again on every page, so
a forged cursor can move within the caller's own results but never outside them. Every part
is checked before it reaches SQL: an integer is a 64-bit row id (0 to 2**63 - 1), a time has a
UTC offset and a UTC equivalent, a score is finite. Anything else is :class:`InvalidCursor`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from campsync_sync import ErrorCode
from sqlalchemy import ColumnElement, and_, or_

from api.errors import DomainError

MAX_CURSOR_CHARS: Final = 256
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
CURSOR_PATTERN: Final = r"^[A-Za-z0-9_\-]{1,256}$"
MAX_ID: Final = (1 << 63) - 1
"""The largest BIGINT: past it, SQLite raises OverflowError and PostgreSQL a DataError."""

T = TypeVar("T")


class InvalidCursor(DomainError):
    code = ErrorCode.CURSOR_INVALID


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps([kind, *(_plain(v) for v in key)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, types: Sequence[type]) -> tuple[Any, ...]:
    """The sort key a cursor carries, each part converted to ``types``.

    ``int`` parts are row ids, ``datetime`` parts come back in UTC and ``float`` parts finite.

    Raises:
        InvalidCursor: the cursor is malformed, or belongs to another list.
    """
    try:
        parts = _unpack(cursor)
        if parts[:1] != [kind] or len(parts) != len(types) + 1:
            raise InvalidCursor("the cursor is not valid for this list; start again without it")
        return tuple(_parse(t, v) for t, v in zip(types, parts[1:], strict=True))
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(
            "the cursor is not valid for this list; start again without it"
        ) from None


def _unpack(cursor: str) -> list[Any]:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise ValueError
    padded = cursor + "=" * (-len(cursor) % 4)
    parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(parts, list):
        raise TypeError
    return parts


def _parse(kind: type, value: Any) -> Any:
    if kind is uuid.UUID:
        return uuid.UUID(str(value))
    if kind is dt.datetime:
        parsed = dt.datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError
        # Columns hold UTC: a time whose UTC falls outside year 1..9999 (0001-01-01T00:00+05:00)
        # raises OverflowError here rather than where the column converts it.
        return parsed.astimezone(dt.UTC)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError
        score = float(value)
        if not math.isfinite(score):  # JSON as Python reads it has NaN and Infinity
            raise ValueError
        return score
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        if not 0 <= value <= MAX_ID:
            raise ValueError
        return value
    raise TypeError


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def after_time_and_id(
    kind: str, cursor: str, time_column: Any, id_column: Any, *, newest_first: bool = False
) -> ColumnElement[bool]:
    """The rows after a ``(time, id)`` cursor, in the list's order (oldest or newest first)."""
    when, after = decode_cursor(kind, cursor, (dt.datetime, uuid.UUID))
    if newest_first:
        return or_(time_column < when, and_(time_column == when, id_column < after))
    return or_(time_column > when, and_(time_column == when, id_column > after))


def page_of(rows: Sequence[T], limit: int, kind: str, key_of: Any) -> Page[T]:
    """Cut a page from ``limit + 1`` fetched rows; a next cursor only when more rows exist."""
    if len(rows) <= limit:
        return Page(list(rows), None)
    items = list(rows[:limit])
    return Page(items, encode_cursor(kind, key_of(items[-1])))
