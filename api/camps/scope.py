"""Which camps a query may read: the one asked for, if the caller may see it, or all theirs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, true
from sqlmodel import Session

from api.camps.models import Camp
from api.errors import NotFound
from api.principal import Principal


def camps_to_read(
    session: Session, principal: Principal, camp: str | None
) -> frozenset[str] | None:
    """The camps a list may show; ``None`` means every camp.

    Raises:
        NotFound: ``camp`` does not exist or is outside the caller's scope (one answer for both).
    """
    if camp is not None:
        principal.require_camp(camp)
        if session.get(Camp, camp) is None:
            raise NotFound("camp not found")
        return frozenset({camp})
    return principal.camps


def in_camps(column: Any, camps: frozenset[str] | None) -> ColumnElement[bool]:
    """SQL: ``column`` is one of ``camps`` (``None``: any camp)."""
    if camps is None:
        return true()
    return column.in_(sorted(camps))  # type: ignore[no-any-return]
