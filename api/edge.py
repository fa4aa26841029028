"""Refuse control characters in the request line before any route sees them.

PostgreSQL refuses a NUL in text outright and the tablet rules refuse every other control
character, so a path or query value carrying one can only ever be an error; catching it here
answers 422 for every route at once, including the ``str`` path parameters no model checks.
Bodies are the models' business (:data:`api.schemas.NO_CONTROLS`).
"""

from __future__ import annotations

import unicodedata
from typing import Final
from urllib.parse import unquote_to_bytes

from campsync_sync import ErrorCode
from pydantic import JsonValue
from starlette.types import ASGIApp, Receive, Scope, Send

from api.handlers import error_response

# The bidi controls that can reorder what a screen shows (the tablet rule, campsync_sync.fields);
# the marks (LRM, RLM) and joiners (ZWNJ, ZWJ) that Dari and Pashto need are not among them.
BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def has_controls(text: str) -> bool:
    """Whether ``text`` holds a C0/C1 control, a surrogate or a bidi embedding or override."""
    # isprintable() is true for almost all real text, so only the rest pays for the scan.
    return not text.isprintable() and any(
        ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs") for ch in text
    )


def _decoded(raw: bytes) -> str | None:
    """Percent-decoded UTF-8; ``None`` for bytes that are not UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _refused_text(raw: bytes) -> str | None:
    """Why ``raw`` (a percent-encoded part of the URL) is refused, or ``None``."""
    text = _decoded(raw)
    if text is None:
        return "string_unicode"
    return "invalid_characters" if has_controls(text) else None


def _path_problem(scope: Scope) -> JsonValue:
    raw_path = scope.get("raw_path")
    if raw_path is not None:
        problem = _refused_text(raw_path)
    else:  # a server that passes no raw path has decoded it already
        problem = "invalid_characters" if has_controls(scope.get("path", "")) else None
    return None if problem is None else {"loc": ["path"], "type": problem}


def _query_problem(query: bytes) -> JsonValue:
    if query.isascii() and b"%" not in query and query.decode("ascii").isprintable():
        return None  # the common case: nothing encoded, nothing to decode
    for part in query.split(b"&"):
        raw_name, _, raw_value = part.partition(b"=")
        name_problem = _refused_text(raw_name.replace(b"+", b" "))
        if name_problem is not None:
            # The name itself is the offending text: do not echo it.
            return {"loc": ["query"], "type": name_problem}
        value_problem = _refused_text(raw_value.replace(b"+", b" "))
        if value_problem is not None:
            name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode("utf-8")
            return {"loc": ["query", name], "type": value_problem}
    return None


class TextGuardMiddleware:
    """Answer 422 ``validation_error`` to a path or query string with control characters.

    The path and each query name and value are percent-decoded as UTF-8; bytes that are not
    UTF-8, C0 and C1 controls (NUL and U+0085 among them), surrogates and the bidi embedding,
    override and isolate controls are refused. The details say where, never what.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = _path_problem(scope) or _query_problem(scope.get("query_string", b""))
            if problem is not None:
                response = error_response(
                    ErrorCode.VALIDATION_ERROR, "the request is not valid", [problem]
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
