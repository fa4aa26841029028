"""Transliteration-tolerant name search: candidates by name key in SQL, ranking in Python.

Every name part of a person is stored as a key (``campsync_sync.names``: Mohammad, Muhammad and
Mohammed share ``mhmd``). A query matches the people whose keys contain every key of the query:
JSONB containment served by the GIN index on PostgreSQL, ``json_each`` on SQLite. The
candidates, at most :data:`MAX_CANDIDATES`, are then ranked by :func:`score`:
:func:`campsync_sync.names.similarity` (the ranking tablets use) computed with rapidfuzz's
C implementation of the same ratio, and with every name part folded and keyed once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from campsync_sync import NAME_FIELDS, fold, name_key, name_keys
from rapidfuzz.fuzz import ratio
from sqlalchemy import ColumnElement, select
from sqlmodel import Session

from api.households.views import PERSON
from api.pagination import decode_cursor, encode_cursor
from api.sql import contains_all

MAX_CANDIDATES: Final = 2000
_WORDS: Final = re.compile(r"[^\w]+|_")


@lru_cache(maxsize=65_536)
def _part(word: str) -> tuple[str, str]:
    return fold(word), name_key(word)


def _parts(text: str | None) -> list[tuple[str, str]]:
    return [_part(word) for word in _WORDS.split(text or "") if word]


def score(query: str, names: Iterable[str | None]) -> float:
    """How well ``query`` matches a person's names, from 0 to 1.

    Each query word scores its best name part, on the folded spelling or (at 0.9) on the
    transliteration key; the scores are averaged (``campsync_sync.names.similarity``).
    """
    parts = [part for name in names for part in _parts(name)]
    wanted = _parts(query)
    if not parts or not wanted:
        return 0.0
    total = 0.0
    for q_fold, q_key in wanted:
        best = 0.0
        for p_fold, p_key in parts:
            keyed = 0.9 * ratio(q_key, p_key) if q_key else 0.0
            best = max(best, ratio(q_fold, p_fold), keyed)
        total += best / 100
    return total / len(wanted)


@dataclass(frozen=True, slots=True)
class Match:
    person_id: uuid.UUID
    household_id: uuid.UUID | None
    score: float


def query_keys(q: str) -> list[str]:
    return name_keys([q])


def find_people(session: Session, q: str, conditions: Iterable[ColumnElement[bool]]) -> list[Match]:
    """People matching every word of ``q`` (and ``conditions``), with their similarity."""
    keys = query_keys(q)
    if not keys:
        return []
    dialect = session.get_bind().dialect.name
    names = [PERSON.c[n] for n in NAME_FIELDS]
    rows = session.execute(
        select(PERSON.c.id, PERSON.c.household_id, *names)
        .where(*conditions, contains_all(dialect, PERSON.c.name_keys, keys))
        .order_by(PERSON.c.id)
        .limit(MAX_CANDIDATES)
    ).all()
    return [Match(row[0], row[1], round(score(q, row[2:]), 6)) for row in rows]


@dataclass(frozen=True, slots=True)
class RankedPage:
    ids: list[uuid.UUID]
    scores: dict[uuid.UUID, float]
    next_cursor: str | None


def rank(
    scores: dict[uuid.UUID, float], *, kind: str, cursor: str | None, limit: int
) -> RankedPage:
    """Order ids by score (best first), then id; cut the page after ``cursor``."""
    ordered: Sequence[tuple[float, uuid.UUID]] = sorted(
        ((s, i) for i, s in scores.items()), key=lambda p: (-p[0], p[1])
    )
    if cursor is not None:
        after_score, after_id = decode_cursor(kind, cursor, (float, uuid.UUID))
        ordered = [p for p in ordered if (-p[0], p[1]) > (-after_score, after_id)]
    page = ordered[: limit + 1]
    more = len(page) > limit
    page = page[:limit]
    next_cursor = encode_cursor(kind, page[-1]) if more else None
    return RankedPage([i for _, i in page], {i: s for s, i in page}, next_cursor)


def best_by_household(matches: Iterable[Match]) -> dict[uuid.UUID, float]:
    """A household's score is its best-matching member's."""
    best: dict[uuid.UUID, float] = {}
    for match in matches:
        if match.household_id is not None:
            best[match.household_id] = max(best.get(match.household_id, 0.0), match.score)
    return best


def by_person(matches: Iterable[Match]) -> dict[uuid.UUID, float]:
    return {m.person_id: m.score for m in matches}
