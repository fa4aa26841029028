"""Name keys that survive transliteration: Mohammad, Muhammad and Mohammed share one key.

Names written in Latin script by different field workers differ mostly in vowels, doubled
letters and a few interchangeable consonants. :func:`name_key` reduces a name part to a
consonant skeleton (first letter kept, vowels dropped, doubles collapsed, q→k, ph→f...), so
exact key matches find spelling variants; :func:`similarity` then ranks the candidates.
Local-script names lose their vowel marks, and the letters Arabic and Persian keyboards
encode differently (Arabic yeh and kaf against Persian yeh and keheh, teh marbuta against
heh) are unified. The server indexes keys,
the client searches with them; both import this module so they agree.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import Final

__all__ = ["NAME_FIELDS", "fold", "name_key", "name_keys", "similarity"]

NAME_FIELDS: Final = (
    "given_name",
    "family_name",
    "father_name",
    "given_name_local",
    "family_name_local",
    "father_name_local",
)
"""The person fields whose name keys are indexed and searched, by the server and the tablet."""

_VOWELS = frozenset("aeiouy")
_DIGRAPHS = (("ph", "f"), ("gh", "g"), ("kh", "k"), ("th", "t"), ("dh", "d"), ("ck", "k"))
_LETTERS = {"q": "k", "w": "v", "c": "k", "x": "ks", "j": "j"}
_WORD = re.compile(r"[^\W_]")
# Arabic and Persian keyboards type different code points for the same Dari or Pashto letter
# (Arabic yeh and kaf against Persian yeh and keheh); tatweel only stretches a word.
_LOCAL = str.maketrans(
    {
        "\u064a": "\u06cc",
        "\u0649": "\u06cc",
        "\u0643": "\u06a9",
        "\u0629": "\u0647",
        "\u06c0": "\u0647",
        "\u0640": None,
    }
)


def fold(text: str) -> str:
    """Case-fold and strip accents and vowel marks (any script)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).casefold()


def _latin_key(word: str) -> str:
    for digraph, letter in _DIGRAPHS:
        word = word.replace(digraph, letter)
    word = "".join(_LETTERS.get(ch, ch) for ch in word)
    first, rest = word[0], word[1:]
    if first in _VOWELS - {"y"}:
        first = "a"  # Osman/Usman, Ibrahim/Ebrahim
    skeleton = [first]
    for i, ch in enumerate(rest, start=1):
        following = word[i + 1] if i + 1 < len(word) else ""
        # An 'h' between a vowel and a consonant is mostly a spelling choice (Ahmad/Ahmed,
        # Fatimah); between vowels it is heard (Mohammad keeps it).
        silent_h = ch == "h" and word[i - 1] in _VOWELS and following not in _VOWELS
        if ch in _VOWELS or silent_h or ch == skeleton[-1]:
            continue
        skeleton.append(ch)
    return "".join(skeleton)


@functools.lru_cache(maxsize=65536)
def name_key(word: str) -> str:
    """The key of one name part; empty for a part with no letters."""
    folded = fold(word)
    letters = "".join(ch for ch in folded if ch.isalpha())
    if not letters:
        return ""
    if letters.isascii():
        return _latin_key(letters)
    return letters.translate(_LOCAL)


def _parts(text: str | None) -> list[str]:
    """Split a name into parts: runs of letters, digits and the marks that sit on them.

    Vowel marks (harakat) and accents belong to their word; splitting at them would cut
    ``مُحَمَّد`` into single letters.
    """
    words = (text or "").split()
    if all(word.isalnum() for word in words):
        return words  # the common case, and the server's hot path: plain words
    parts: list[str] = []
    current: list[str] = []
    for ch in text or "":
        if _WORD.match(ch) or unicodedata.category(ch).startswith("M"):
            current.append(ch)
        elif current:
            parts.append("".join(current))
            current = []
    if current:
        parts.append("".join(current))
    return parts


@functools.lru_cache(maxsize=65536)
def _keys_of(name: str) -> tuple[str, ...]:
    """The non-empty keys of one name's parts (cached: the server keys every person it stores)."""
    return tuple(key for part in _parts(name) if (key := name_key(part)))


def name_keys(names: Iterable[str | None]) -> list[str]:
    """Distinct keys of every part of every name given, in first-seen order."""
    keys: list[str] = []
    for name in names:
        if name:
            for key in _keys_of(name):
                if key not in keys:
                    keys.append(key)
    return keys


def similarity(query: str, names: Iterable[str | None]) -> float:
    """How well ``query`` matches a person's names, from 0 to 1.

    Each query part is scored against its best-matching name part, on both the folded
    spelling and the key, and the scores are averaged.
    """
    parts = [(fold(p), name_key(p)) for n in names for p in _parts(n)]
    query_parts = [(fold(p), name_key(p)) for p in _parts(query)]
    if not parts or not query_parts:
        return 0.0
    total = 0.0
    for q_fold, q_key in query_parts:
        best = 0.0
        for p_fold, p_key in parts:
            spelled = difflib.SequenceMatcher(None, q_fold, p_fold).ratio()
            keyed = difflib.SequenceMatcher(None, q_key, p_key).ratio() if q_key else 0.0
            best = max(best, spelled, 0.9 * keyed)
        total += best
    return total / len(query_parts)
