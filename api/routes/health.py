from __future__ import annotations

from campsync_sync import ErrorBody, ErrorCode
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.auth import Public
from api.db import current_revision, head_revision
from api.deps import EngineDep
from api.errors import DomainError

router = APIRouter(tags=["health"], dependencies=[Public])
_UNAVAILABLE = ErrorCode.SERVICE_UNAVAILABLE


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    revision: str | None
    head: str


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> Health:
    """Answers 200 while the process runs; it does not touch the database."""
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is at the newest migration",
    responses={503: {"model": ErrorBody, "description": "Not ready"}},
)
def readyz(engine: EngineDep) -> Readiness:
    """Ready when a query succeeds and the schema revision is the code's head revision."""
    head = head_revision()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(engine)
    except SQLAlchemyError:
        raise DomainError(
            "database unreachable", {"database": "unreachable"}, code=_UNAVAILABLE
        ) from None
    if revision != head:
        raise DomainError(
            "database schema is not at the newest migration: run `campsync db upgrade`",
            {"revision": revision, "head": head},
            code=_UNAVAILABLE,
        )
    return Readiness(status="ready", database=engine.dialect.name, revision=revision, head=head)
