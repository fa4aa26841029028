"""Documented error responses, shared by the routes' OpenAPI descriptions."""

from __future__ import annotations

from typing import Annotated, Any

from campsync_sync import ErrorBody
from fastapi import Path

_E = {"model": ErrorBody}

ERRORS_READ: dict[int | str, dict[str, Any]] = {
    401: {**_E, "description": "Missing, invalid or expired token"},
    403: {**_E, "description": "Role or scope does not allow this"},
    404: {**_E, "description": "Not found, or outside your camps"},
    422: {**_E, "description": "Invalid parameters"},
}
ERRORS_BODY: dict[int | str, dict[str, Any]] = {
    **ERRORS_READ,
    400: {**_E, "description": "The body is not valid JSON"},
    413: {**_E, "description": "Request body too large"},
}
ERRORS_WRITE: dict[int | str, dict[str, Any]] = {
    **ERRORS_BODY,
    409: {**_E, "description": "Conflicts with the current state"},
}
ERRORS_LIST: dict[int | str, dict[str, Any]] = {
    **ERRORS_READ,
    400: {**_E, "description": "`cursor_invalid`: the cursor is not one this list issued"},
}

CampIdPath = Annotated[
    str,
    Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$", description="The camp's slug, e.g. `torkham-1`."),
]
"""A camp id in a path: the slug's own rule, so nothing else reaches the database."""
